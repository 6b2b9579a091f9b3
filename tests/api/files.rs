//! Documents for the agent: `POST/GET /api/v1/agent/files`, `DELETE …/{id}`. Letta parses,
//! chunks and embeds each upload; the scripted model greps the user's documents when asked
//! "what does my document say about X?" and quotes the lines it found.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

/// A one-page PDF whose page says `text` (Helvetica, one line).
fn pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for offset in offsets {
        out.push_str(&format!("{offset:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}

impl TestApp {
    async fn files(&self, token: &str) -> Vec<Value> {
        let listed = self.get("/api/v1/agent/files", token).await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        listed.body["files"].as_array().unwrap().clone()
    }

    /// Waits until Letta has processed the file `id`.
    async fn processed(&self, token: &str, id: &str) {
        let status = eventually("the document processed", Duration::from_secs(60), || {
            let (app, token) = (self, token);
            async move {
                let files = app.files(token).await;
                let file = files.iter().find(|f| f["id"] == id)?;
                let status = file["status"].as_str().unwrap().to_string();
                (status == "completed" || status == "error").then_some(status)
            }
        })
        .await;
        assert_eq!(status, "completed");
    }

    /// The agent's answer to `question` (the text of its reply).
    async fn answer(&self, token: &str, question: &str) -> String {
        text_of(&self.chat(token, question, None).await.events())
    }
}

#[tokio::test]
async fn the_agent_reads_the_users_documents_and_forgets_a_deleted_one() {
    let app = spawn_app().await;
    let TestUser {
        token,
        id,
        password,
        ..
    } = app.ready_user("Reader").await;
    assert_eq!(app.files(&token).await, Vec::<Value>::new());

    // A text file and a PDF, each processed by Letta, then asked about.
    let notes = "Project notes\n\nThe launch code for the rocket is PELICAN-42.\nThe meeting is on Tuesday.\n";
    let uploaded = app.upload(&token, "notes.txt", notes.into()).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    assert_eq!(uploaded.body["name"], "notes.txt");
    assert_eq!(uploaded.body["bytes"], notes.len());
    assert!(uploaded.body["status"].is_string(), "{}", uploaded.body);
    let notes_id = uploaded.body["id"].as_str().unwrap().to_string();
    let tide = app
        .upload(
            &token,
            "tide.pdf",
            pdf("The tide table says high water is at noon."),
        )
        .await;
    assert_eq!(tide.status, 201, "{}", tide.body);
    app.processed(&token, &notes_id).await;
    app.processed(&token, tide.body["id"].as_str().unwrap())
        .await;
    let said = app
        .answer(&token, "What does my document say about launch code?")
        .await;
    assert_eq!(
        said,
        "From your documents: The launch code for the rocket is PELICAN-42."
    );
    let said = app
        .answer(&token, "What does my document say about high water?")
        .await;
    assert!(said.contains("high water is at noon"), "{said}");

    // Another user can neither see nor delete it.
    let stranger = app.ready_user("Snoop").await;
    assert_eq!(app.files(&stranger.token).await, Vec::<Value>::new());
    let path = format!("/api/v1/agent/files/{notes_id}");
    let theirs = app
        .call(Method::DELETE, &path, Some(&stranger.token), None)
        .await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);

    // Deleted: gone from the list and from the agent.
    let deleted = app.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["deleted"], true);
    let left: Vec<String> = app
        .files(&token)
        .await
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["tide.pdf"]);
    let said = app
        .answer(&token, "What does my document say about launch code?")
        .await;
    assert_eq!(said, "I found nothing about that in your documents.");
    let again = app.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(again.status, 404, "{}", again.body);
    // The export lists what the agent was given.
    let exported: Vec<Value> = app
        .export(&token)
        .await
        .into_iter()
        .filter(|line| line["type"] == "document")
        .collect();
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(exported[0]["name"], "tide.pdf");
    assert_eq!(exported[0]["status"], "completed");

    // Deleting the account deletes the folder with the rest.
    let folder = format!("files-{id}");
    assert_eq!(
        app.state.letta.folders_named(&folder).await.unwrap().len(),
        1
    );
    let gone = app.delete_account(&token, Some(&password)).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(
        app.state.letta.folders_named(&folder).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn bad_documents_are_refused_with_what_is_wrong() {
    let app = spawn_app_configured(|c| {
        c.letta.file_max_bytes = 1_000;
        c.letta.files_max = 1;
    })
    .await;
    let TestUser { token, .. } = app.ready_user("Careless").await;
    let refused = |reply: &Reply, status: u16, code: &str| {
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    };
    let image = app
        .upload(
            &token,
            "photo.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        )
        .await;
    refused(&image, 415, "unsupported_media_type");
    let message = image.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Markdown (.md), PDF (.pdf)"), "{message}");
    let big = app.upload(&token, "big.txt", vec![b'a'; 1_001]).await;
    refused(&big, 413, "payload_too_large");
    assert_eq!(big.body["error"]["limit_bytes"], 1_000);
    refused(
        &app.upload(&token, "empty.txt", Vec::new()).await,
        422,
        "validation_failed",
    );
    let not_a_form = app
        .post_with("/api/v1/agent/files", &token, serde_json::json!({}))
        .await;
    refused(&not_a_form, 415, "unsupported_media_type");
    // `FILES_MAX` (here 1): the second document is refused, and none was stored for the
    // refusals above.
    let first = app.upload(&token, "one.md", b"# One".to_vec()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    refused(
        &app.upload(&token, "two.md", b"# Two".to_vec()).await,
        409,
        "file_limit",
    );
    assert_eq!(app.files(&token).await.len(), 1);
}
