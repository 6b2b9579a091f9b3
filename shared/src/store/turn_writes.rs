//! A chat turn's writes: what it reads before it starts (one batch), what it writes when it
//! starts and when it ends (one transaction each). With the request gate that is one read and
//! three writes; a turn on a warm instance skips the read and carries the gate in its start:
//! two writes.

use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{ConditionCheck, Delete, KeysAndAttributes, Put, TransactWriteItem, Update},
};

use super::{
    Store,
    attrs::{Item, build_error, key, n, s, sdk_error},
    keys::{
        PROFILE_SK, TURN_SLOT_PREFIX, conversation_sk, idempotency_sk, message_sk, turn_sk,
        turn_slot_sk, user_pk,
    },
    known::KnownFacts,
    limits::{Exceeded, RateLimit},
    table,
    turns::{Held, IDEMPOTENCY_TTL_SECS, IdempotencyRecord, TurnState, turn_lock, turn_slot},
};
use crate::{
    app::{clock::now_epoch, dependency::DependencyError},
    domain::{
        Conversation, ConversationId, IdempotencyKey, Message, MessageStatus, Profile, Usage,
        UserId,
    },
};

/// What a turn reads before it starts.
#[derive(Debug)]
pub struct TurnReads {
    /// The user's profile.
    pub profile: Option<Profile>,
    /// The conversation.
    pub conversation: Option<Conversation>,
    /// The user's turn slots no turn holds.
    pub free_slots: Vec<u32>,
    /// The others, with the turn holding each.
    pub held_slots: HeldSlots,
}

/// Turn slots and the turns holding them.
pub(super) type HeldSlots = Vec<(u32, Held)>;

/// How a turn's start went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnStart {
    /// The lock is the turn's, its message and idempotency record are stored.
    Started,
    /// Another turn holds the conversation's lock; nothing was written.
    Locked,
    /// Another turn took the slot meanwhile; nothing was written.
    SlotTaken,
    /// The idempotency key was used before; nothing was written.
    KeyUsed,
    /// The conversation was deleted meanwhile; nothing was written.
    Gone,
    /// The token was issued before the user's sessions were revoked; nothing was written.
    Revoked,
    /// A rate limit is used up; nothing was written.
    Limited(Exceeded),
    /// A known fact no longer holds (the profile or the conversation changed); nothing was
    /// written: read them and start again.
    Stale,
}

/// What a start on a warm instance folds into its transaction: the request's gate (its rate
/// limits and the revocation check, instead of a request of their own) and the facts it did
/// not read (each checked by a condition).
pub struct Unread<'a> {
    /// The access token's `iat`, epoch seconds.
    pub issued_at: i64,
    /// The limits the turn counts against.
    pub limits: &'a [RateLimit],
    /// The profile and conversation as this instance knows them.
    pub known: &'a KnownFacts,
}

/// What a turn's end writes.
pub struct TurnEnd<'a> {
    /// The user.
    pub user: &'a UserId,
    /// The turn's conversation.
    pub conversation: &'a ConversationId,
    /// The reply, as it is stored.
    pub reply: &'a Message,
    /// The user's message of the turn, and its final status.
    pub user_message: (&'a str, MessageStatus),
    /// The turn slot the turn holds.
    pub slot: u32,
    /// The idempotency key, and how its turn ended (`None` frees it for a retry).
    pub idempotency: Option<(&'a IdempotencyKey, Option<TurnState>)>,
    /// What was billed: the day, the tokens and the cost (added to the day's usage).
    pub billed: Option<(&'a str, &'a Usage, f64)>,
}

/// The writes of a turn's start, which a failed condition names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartWrite {
    /// The counter of the request's `n`th rate limit.
    Limit(usize),
    /// The check that the token was not revoked.
    Revocation,
    /// The check that the profile is as known.
    Profile,
    /// The conversation's turn lock.
    Lock,
    /// The user's message.
    Message,
    /// The conversation's activity (its count and time; it must still exist).
    Activity,
    /// The user's turn slot.
    Slot,
    /// The idempotency record.
    Idempotency,
}

impl StartWrite {
    /// What the writes whose conditions failed say about the start (nothing was written):
    /// the gate's answers first, as if it had been a request of its own; then facts that
    /// changed (`known`: the conversation's activity is conditioned on it being as known).
    fn outcome(failed: &[Self], limits: &[RateLimit], known: bool) -> TurnStart {
        if failed.contains(&Self::Revocation) {
            return TurnStart::Revoked;
        }
        if let Some(limit) = failed.iter().find_map(|w| match w {
            Self::Limit(i) => limits.get(*i),
            _ => None,
        }) {
            return TurnStart::Limited(limit.exceeded(now_epoch()));
        }
        if failed.contains(&Self::Profile) || (known && failed.contains(&Self::Activity)) {
            return TurnStart::Stale;
        }
        if failed.contains(&Self::Idempotency) {
            TurnStart::KeyUsed
        } else if failed.contains(&Self::Lock) {
            TurnStart::Locked
        } else if failed.contains(&Self::Slot) {
            TurnStart::SlotTaken
        } else {
            TurnStart::Gone
        }
    }
}

/// One write of a transaction, and whether the turn's end can do without it when its
/// condition fails (an item another request changed meanwhile: a lock taken over, a
/// conversation deleted).
struct Write {
    item: TransactWriteItem,
    optional: bool,
}

impl Write {
    fn required(item: TransactWriteItem) -> Self {
        Self {
            item,
            optional: false,
        }
    }

    fn optional(item: TransactWriteItem) -> Self {
        Self {
            item,
            optional: true,
        }
    }
}

/// The indexes of the writes whose condition failed, when the transaction was cancelled for
/// conditions only; `None` for any other failure.
pub(super) fn failed_conditions(e: &TransactWriteItemsError) -> Option<Vec<usize>> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = e else {
        return None;
    };
    let mut failed = Vec::new();
    for (i, reason) in cancelled.cancellation_reasons().iter().enumerate() {
        match reason.code() {
            None | Some("None") => {}
            Some("ConditionalCheckFailed") => failed.push(i),
            Some(_) => return None,
        }
    }
    (!failed.is_empty()).then_some(failed)
}

type Attributes = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

fn sort_key(item: &Attributes) -> Option<&str> {
    item.get(table::SORT_KEY)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The slots of `0..slots` that none of the slot items read holds (a held slot's item has not
/// expired yet), and the held ones with their holders.
fn read_slots(
    slots: u32,
    items: Vec<Attributes>,
) -> Result<(Vec<u32>, HeldSlots), DependencyError> {
    let now = now_epoch();
    let mut held = Vec::new();
    for item in items {
        let live = item
            .get(table::TTL_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|expires| expires >= now);
        let slot = sort_key(&item)
            .and_then(|sk| sk.strip_prefix(TURN_SLOT_PREFIX))
            .and_then(|n| n.parse::<u32>().ok());
        if let (true, Some(slot)) = (live, slot) {
            held.push((slot, Item::<Held>::from_attributes(item)?));
        }
    }
    let free = (0..slots)
        .filter(|slot| !held.iter().any(|(h, _)| h == slot))
        .collect();
    Ok((free, held))
}

impl Store {
    /// What a turn reads before it starts, in one request (strongly consistent): the user's
    /// profile, the conversation, and which of the user's `slots` turn slots are free.
    pub async fn turn_reads(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        slots: u32,
    ) -> Result<TurnReads, DependencyError> {
        let (profile_sk, conversation_sk) = (PROFILE_SK.to_string(), conversation_sk(conversation));
        let mut wanted = vec![profile_sk.clone(), conversation_sk.clone()];
        wanted.extend((0..slots).map(turn_slot_sk));
        let mut reads = TurnReads {
            profile: None,
            conversation: None,
            free_slots: Vec::new(),
            held_slots: Vec::new(),
        };
        let mut slot_items = Vec::new();
        for item in self.batch_get(user, wanted).await? {
            match sort_key(&item) {
                Some(sk) if sk == profile_sk => reads.profile = Some(Item::from_attributes(item)?),
                Some(sk) if sk == conversation_sk => {
                    reads.conversation = Some(Item::from_attributes(item)?)
                }
                _ => slot_items.push(item),
            }
        }
        (reads.free_slots, reads.held_slots) = read_slots(slots, slot_items)?;
        Ok(reads)
    }

    /// Which of the user's `slots` turn slots are free (unheld or expired), and the others with
    /// the turn holding each.
    pub async fn turn_slots(
        &self,
        user: &UserId,
        slots: u32,
    ) -> Result<(Vec<u32>, Vec<(u32, Held)>), DependencyError> {
        let items = self
            .batch_get(user, (0..slots).map(turn_slot_sk).collect())
            .await?;
        read_slots(slots, items)
    }

    /// Items of the user's partition by sort key, in one request (keys DynamoDB leaves
    /// unprocessed, when throttling, are asked for again).
    async fn batch_get(
        &self,
        user: &UserId,
        sort_keys: Vec<String>,
    ) -> Result<Vec<Attributes>, DependencyError> {
        let mut keys = KeysAndAttributes::builder()
            .set_keys(Some(
                sort_keys
                    .into_iter()
                    .map(|sk| key(user_pk(user), sk))
                    .collect(),
            ))
            .consistent_read(true)
            .build()
            .map_err(build_error)?;
        let mut items = Vec::new();
        for attempt in 0..5u64 {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(sdk_error)?;
            items.extend(
                out.responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default(),
            );
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(left) if !left.keys().is_empty() => {
                    keys = left;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                _ => return Ok(items),
            }
        }
        Err(DependencyError::Status {
            service: crate::app::dependency::Service::DynamoDb,
            status: 503,
            body: "ProvisionedThroughputExceededException: keys left unprocessed".into(),
        })
    }

    /// Starts a turn in one transaction: takes the conversation's turn lock (free, expired,
    /// or already this message's: taken over) and the user's turn slot `slot`, stores the
    /// user's message, counts it in the conversation and records the idempotency key.
    ///
    /// With `unread`, the same transaction also counts the request against its rate limits,
    /// checks that the token was not revoked, and checks that the profile and the conversation
    /// are still as this instance knows them: a warm turn's only request before Letta.
    pub async fn start_turn(
        &self,
        user: &UserId,
        message: &Message,
        slot: u32,
        idempotency: Option<(&IdempotencyKey, &IdempotencyRecord)>,
        unread: Option<&Unread<'_>>,
    ) -> Result<TurnStart, DependencyError> {
        let now = now_epoch();
        let conversation = &message.conversation_id;
        // The lock and the slot are taken alike: free, expired, or already this message's.
        let take = |item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(
                    "attribute_not_exists(pk) OR #ttl < :now OR message_id = :mine",
                )
                .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":mine", s(&message.id))
                .build()
                .map_err(build_error)
        };
        let lock = take(turn_lock(user, conversation, &message.id, now)?)?;
        let stored = Put::builder()
            .table_name(&self.table)
            .set_item(Some(
                Item::new(
                    user_pk(user),
                    message_sk(conversation, &message.id),
                    message,
                )
                .into_attributes()?,
            ))
            .build()
            .map_err(build_error)?;
        let held = take(turn_slot(user, slot, conversation, &message.id, now)?)?;
        let activity =
            self.known_activity_update(user, conversation, 1, unread.map(|u| u.known))?;
        let mut writes = vec![
            (
                StartWrite::Lock,
                TransactWriteItem::builder().put(lock).build(),
            ),
            (
                StartWrite::Message,
                TransactWriteItem::builder().put(stored).build(),
            ),
            (
                StartWrite::Activity,
                TransactWriteItem::builder().update(activity).build(),
            ),
            (
                StartWrite::Slot,
                TransactWriteItem::builder().put(held).build(),
            ),
        ];
        if let Some((idem_key, record)) = idempotency {
            let put = self.idempotency_put(user, idem_key, record, now)?;
            writes.push((StartWrite::Idempotency, put));
        }
        if let Some(unread) = unread {
            writes.extend(self.unread_checks(user, unread, now)?);
        }
        // A start with unread facts may be followed by one without (with the same message):
        // the request token (at most 36 characters) names which, so DynamoDB does not take the
        // second for a repeat of the first.
        let token = match unread {
            Some(_) => format!("{}-warm", message.id),
            None => format!("{}-start", message.id),
        };
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes.iter().map(|w| w.1.clone()).collect()))
            .client_request_token(token)
            .send()
            .await;
        let Err(e) = result else {
            return Ok(TurnStart::Started);
        };
        let Some(failed) = e.as_service_error().and_then(failed_conditions) else {
            return Err(sdk_error(e));
        };
        let failed: Vec<StartWrite> = failed.into_iter().map(|i| writes[i].0).collect();
        let limits = unread.map_or(&[][..], |u| u.limits);
        Ok(StartWrite::outcome(&failed, limits, unread.is_some()))
    }

    /// The idempotency record of a turn's start, unless the key is in use.
    fn idempotency_put(
        &self,
        user: &UserId,
        idem_key: &IdempotencyKey,
        record: &IdempotencyRecord,
        now: i64,
    ) -> Result<TransactWriteItem, DependencyError> {
        let item = Item::new(user_pk(user), idempotency_sk(idem_key.as_str()), record)
            .expiring(now + IDEMPOTENCY_TTL_SECS);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item.into_attributes()?))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The gate's items and the check that the profile is as known.
    fn unread_checks(
        &self,
        user: &UserId,
        unread: &Unread<'_>,
        now: i64,
    ) -> Result<Vec<(StartWrite, TransactWriteItem)>, DependencyError> {
        let gate = self.gate_items(user, unread.issued_at, unread.limits, now)?;
        let mut checks: Vec<(StartWrite, TransactWriteItem)> = gate
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let write = match i {
                    i if i < unread.limits.len() => StartWrite::Limit(i),
                    _ => StartWrite::Revocation,
                };
                (write, item)
            })
            .collect();
        let mut values = HashMap::new();
        let condition = unread.known.profile_condition(&mut values);
        let profile = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK.into())))
            .condition_expression(condition)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        let profile = TransactWriteItem::builder()
            .condition_check(profile)
            .build();
        checks.push((StartWrite::Profile, profile));
        Ok(checks)
    }

    /// Ends a turn in one transaction: stores the reply, settles the user's message, counts
    /// the reply, adds what was billed to the day's usage, settles the idempotency record and
    /// releases the lock and the turn slot. Tried again (the same request
    /// token: DynamoDB applies it once) when it fails; a write whose item changed meanwhile (a
    /// lock taken over, a conversation or key gone) is left out rather than losing the reply.
    pub async fn finish_turn(&self, end: &TurnEnd<'_>) -> Result<(), DependencyError> {
        let mut writes = self.end_writes(end)?;
        let mut round = 0;
        let mut attempt = 0u64;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.iter().map(|w| w.item.clone()).collect()))
                .client_request_token(format!("{}-end{round}", end.reply.id))
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(failed) = e.as_service_error().and_then(failed_conditions)
                && failed.iter().all(|i| writes[*i].optional)
                && round < 3
            {
                tracing::warn!(
                    left_out = failed.len(),
                    "the turn's end left out writes whose items changed meanwhile"
                );
                let mut i = 0;
                writes.retain(|_| {
                    i += 1;
                    !failed.contains(&(i - 1))
                });
                round += 1;
                continue;
            }
            if attempt >= 2 {
                return Err(sdk_error(e));
            }
            attempt += 1;
            tracing::warn!(error = %sdk_error(e), "ending the turn failed; trying again");
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
    }

    /// The writes of a turn's end, each marked whether the end can do without it.
    fn end_writes(&self, end: &TurnEnd<'_>) -> Result<Vec<Write>, DependencyError> {
        let pk = user_pk(end.user);
        let (asked, status) = end.user_message;
        let reply = Item::new(
            pk.clone(),
            message_sk(end.conversation, &end.reply.id),
            end.reply,
        );
        let reply = Put::builder()
            .table_name(&self.table)
            .set_item(Some(reply.into_attributes()?))
            .build()
            .map_err(build_error)?;
        let settle = self.set_existing(
            &pk,
            message_sk(end.conversation, asked),
            "status",
            status.as_str(),
        )?;
        let activity = self.activity_update(end.user, end.conversation, 1)?;
        let unlock = self.release(&pk, turn_sk(end.conversation), asked)?;
        let free_slot = self.release(&pk, turn_slot_sk(end.slot), asked)?;
        let mut writes = vec![
            Write::required(TransactWriteItem::builder().put(reply).build()),
            Write::optional(TransactWriteItem::builder().update(settle).build()),
            Write::optional(TransactWriteItem::builder().update(activity).build()),
            Write::optional(TransactWriteItem::builder().delete(unlock).build()),
            Write::optional(TransactWriteItem::builder().delete(free_slot).build()),
        ];
        if let Some((day, usage, cost)) = end.billed {
            let add = self.daily_usage_update(end.user, day, 1, usage, cost)?;
            writes.push(Write::required(
                TransactWriteItem::builder().update(add).build(),
            ));
        }
        if let Some((idem_key, state)) = end.idempotency {
            let sk = idempotency_sk(idem_key.as_str());
            let item = match state {
                Some(state) => {
                    let settle = self.set_existing(&pk, sk, "state", state.as_str())?;
                    TransactWriteItem::builder().update(settle).build()
                }
                None => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(pk.clone(), sk)))
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().delete(delete).build()
                }
            };
            writes.push(Write::optional(item));
        }
        Ok(writes)
    }

    /// Sets one string attribute of an item that must still exist.
    fn set_existing(
        &self,
        pk: &str,
        sk: String,
        name: &str,
        value: &str,
    ) -> Result<Update, DependencyError> {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_string(), sk)))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#a", name)
            .expression_attribute_values(":v", s(value))
            .build()
            .map_err(build_error)
    }

    /// Deletes a lock or slot item while it is still `message`'s.
    fn release(&self, pk: &str, sk: String, message: &str) -> Result<Delete, DependencyError> {
        Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_string(), sk)))
            .condition_expression("message_id = :m")
            .expression_attribute_values(":m", s(message))
            .build()
            .map_err(build_error)
    }
}
