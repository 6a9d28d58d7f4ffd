//! [`ChangeStore`] on PostgreSQL: `NOTIFY` on the channel `loyalty_changes` to announce, and one
//! dedicated connection per instance that `LISTEN`s (outside the pool, since a listening session
//! must stay open). The payload is `<instance>|m|<member id>,<member id>…` or `<instance>|*`; an
//! instance skips its own. The listener reconnects by itself with a growing pause and then yields
//! [`Change::Everyone`], because notifications sent while it was away are lost.
//!
//! Announcements go out through one task per instance that sends whatever has queued up while
//! its last `NOTIFY` was on its way, in one payload: a `NOTIFY` is a transaction that PostgreSQL
//! commits durably, and one per purchase was a commit per purchase that nobody needed
//! (`docs/benchmarks.md`). A quiet instance sends each change at once.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{PgStorage, backend};
use crate::storage::{Change, ChangeStore, StorageError};
use deadpool_postgres::Pool;

const CHANNEL: &str = "loyalty_changes";
/// Changes queued for the instance before the listener waits for it to catch up.
const QUEUE: usize = 4_096;
/// The longest payload sent: PostgreSQL refuses one of 8,000 bytes or more.
const PAYLOAD_BYTES: usize = 7_900;

/// Starts the task that sends this instance's announcements, for as long as the returned sender
/// (kept by every clone of the storage) lives.
pub(super) fn announcer(pool: Pool, instance: String) -> mpsc::UnboundedSender<Change> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            for payload in payloads(&instance, batch) {
                if let Err(e) = notify(&pool, &payload).await {
                    tracing::warn!(error = %e, "could not tell the other instances of a change");
                }
            }
        }
    });
    tx
}

async fn notify(pool: &Pool, payload: &str) -> Result<(), StorageError> {
    let client = pool.get().await.map_err(backend)?;
    client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await
        .map_err(backend)?;
    Ok(())
}

/// The payloads announcing `batch`: everyone once if anyone is, or each member once, as few
/// payloads as fit under [`PAYLOAD_BYTES`].
fn payloads(instance: &str, batch: Vec<Change>) -> Vec<String> {
    let mut members = BTreeSet::new();
    for change in batch {
        match change {
            Change::Everyone => return vec![format!("{instance}|*")],
            Change::Member(id) => {
                members.insert(id);
            }
        }
    }
    let head = format!("{instance}|m|");
    let mut out = Vec::new();
    let mut payload = head.clone();
    for id in members {
        if payload.len() > head.len() && payload.len() + 1 + id.len() > PAYLOAD_BYTES {
            out.push(std::mem::replace(&mut payload, head.clone()));
        }
        if payload.len() > head.len() {
            payload.push(',');
        }
        payload.push_str(&id);
    }
    if payload.len() > head.len() {
        out.push(payload);
    }
    out
}

#[async_trait]
impl ChangeStore for PgStorage {
    fn shared(&self) -> bool {
        true
    }

    fn announce(&self, change: Change) -> Result<(), StorageError> {
        self.announcer
            .send(change)
            .map_err(|_| backend("the announcing task has stopped"))
    }

    async fn changes(&self) -> Result<Option<mpsc::Receiver<Change>>, StorageError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (config, instance) = (self.config.clone(), self.instance.clone());
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            let mut first = true;
            while !tx.is_closed() {
                match listen(&config, &instance, &tx, !first).await {
                    // The receiver is gone: nobody listens any more.
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "the change feed lost its connection; reconnecting");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
                first = false;
            }
        });
        Ok(Some(rx))
    }
}

/// Listens on one connection until it fails (`Err`) or the receiver is dropped (`Ok`).
async fn listen(
    config: &tokio_postgres::Config,
    instance: &str,
    tx: &mpsc::Sender<Change>,
    after_gap: bool,
) -> Result<(), ListenError> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (heard, mut payloads) = mpsc::unbounded_channel::<String>();
    // The connection delivers notifications only while it is polled: a task of its own does that.
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message?
                && heard.send(n.payload().to_string()).is_err()
            {
                break;
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if after_gap && tx.send(Change::Everyone).await.is_err() {
        driver.abort();
        return Ok(());
    }
    while let Some(payload) = payloads.recv().await {
        for change in parse(&payload, instance) {
            if tx.send(change).await.is_err() {
                driver.abort();
                return Ok(());
            }
        }
    }
    // The driver stopped: the connection failed or the server closed it.
    drop(client);
    match driver.await {
        Ok(Err(e)) => Err(ListenError::Database(e)),
        _ => Err(ListenError::Closed),
    }
}

/// Why a listening connection ended, for the log before it reconnects.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the server closed the connection")]
    Closed,
}

/// The changes a payload announces, unless this instance sent it or it is not one of ours.
fn parse(payload: &str, instance: &str) -> Vec<Change> {
    let mut parts = payload.splitn(3, '|');
    let (Some(from), Some(what)) = (parts.next(), parts.next()) else {
        return Vec::new();
    };
    if from == instance {
        return Vec::new();
    }
    match (what, parts.next()) {
        ("m", Some(members)) => members
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| Change::Member(id.to_string()))
            .collect(),
        ("*", None) => vec![Change::Everyone],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Change {
        Change::Member(id.to_string())
    }

    #[test]
    fn payloads_are_parsed_and_an_instances_own_are_skipped() {
        assert_eq!(parse("b|m|mbr_1", "a"), vec![member("mbr_1")]);
        assert_eq!(
            parse("b|m|mbr_1,mbr_2", "a"),
            vec![member("mbr_1"), member("mbr_2")]
        );
        assert_eq!(parse("b|*", "a"), vec![Change::Everyone]);
        assert_eq!(parse("a|m|mbr_1", "a"), Vec::new());
        for junk in ["", "b", "b|m", "b|m|", "b|m|,", "b|x|y", "b|*|extra"] {
            assert_eq!(parse(junk, "a"), Vec::new(), "{junk}");
        }
    }

    #[test]
    fn a_batch_is_each_member_once_or_everyone_once() {
        let batch = vec![member("mbr_2"), member("mbr_1"), member("mbr_2")];
        assert_eq!(payloads("a", batch), vec!["a|m|mbr_1,mbr_2".to_string()]);
        let batch = vec![member("mbr_1"), Change::Everyone, member("mbr_2")];
        assert_eq!(payloads("a", batch), vec!["a|*".to_string()]);
        assert!(payloads("a", Vec::new()).is_empty());
    }

    #[test]
    fn a_large_batch_is_split_into_payloads_postgres_accepts_and_loses_nobody() {
        let ids: Vec<String> = (0..2_000).map(|i| format!("mbr_{i:08}")).collect();
        let sent = payloads("a", ids.iter().map(|id| member(id)).collect());
        assert!(sent.len() > 1, "2,000 ids do not fit one payload");
        assert!(sent.iter().all(|p| p.len() <= PAYLOAD_BYTES));
        let heard: BTreeSet<String> = sent
            .iter()
            .flat_map(|p| parse(p, "b"))
            .map(|c| match c {
                Change::Member(id) => id,
                Change::Everyone => panic!("no everyone was sent"),
            })
            .collect();
        assert_eq!(heard, ids.into_iter().collect());
    }
}
