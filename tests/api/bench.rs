//! The smoke run of `make bench` (two turns each side, two users at once, no bootstraps), so
//! the bench cannot rot: every figure it reports comes out of a run against the real stack.

use std::path::PathBuf;

use crate::helpers::*;

#[tokio::test]
async fn the_bench_measures_both_sides_and_counts_dynamodb_requests() {
    let _stack = share_stack().await;
    stack_config();
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let results = bench::run(&bench::Options::smoke(workspace))
        .await
        .expect("a smoke run");
    assert_eq!(results.errors, (0, 0));
    assert_eq!((results.backend.len(), results.letta.len()), (2, 2));
    for t in results.backend.iter().chain(&results.letta) {
        assert!(
            t.first_event <= t.first_text && t.first_text <= t.end,
            "{t:?}"
        );
    }
    // Every reply text event that left Letta reached the client, through the tap, in order.
    assert!(!results.relay.is_empty(), "the tap saw the reply text");
    assert_eq!(results.relay_unpaired, 0);
    let chat = &results.dynamodb["POST /api/v1/chat/message"];
    let (reads, writes) = bench::dynamo::reads_and_writes(chat);
    assert!(
        reads == 0 && writes == 2,
        "a warm turn reads nothing, and writes its start and its end: {chat:?}"
    );
    let before = results.dynamodb_before_letta.as_ref().expect("counted");
    assert_eq!(
        before.get("TransactWriteItems"),
        Some(&1),
        "one request before Letta: {before:?}"
    );
    assert_eq!(before.values().sum::<usize>(), 1, "{before:?}");
    let (plain, memory) = results.prompt_tokens.expect("the prompt tokens");
    assert!(plain <= 2300 && memory > plain, "{plain} / {memory}");
    assert!(
        results.dynamodb.len() >= 10,
        "the chat turn and nine other endpoints"
    );
    let load = results.load.as_ref().expect("the load figures");
    assert_eq!((load.backend.len(), load.letta.len()), (2, 2));
    let rows = bench::report::rows(&results);
    let table = bench::report::table(&rows);
    println!("{table}");
    for what in [
        "time to first event",
        "time to first reply text",
        "time to end of stream",
        "relay delay per reply text event",
        "DynamoDB requests: POST /api/v1/chat/message",
        "DynamoDB requests before Letta",
        "prompt tokens: a plain turn",
        "the load's CPU time, each side",
        "AWS cost per 1M chat turns",
    ] {
        assert!(table.contains(what), "{what} in {table}");
    }
}
