//! [`ChangeStore`] on PostgreSQL: `NOTIFY` on the channel `loyalty_changes` to announce, and one
//! dedicated connection per instance that `LISTEN`s (outside the pool, since a listening session
//! must stay open). The payload is `<instance>|m|<member id>` or `<instance>|*`; an instance skips
//! its own. The listener reconnects by itself with a growing pause and then yields
//! [`Change::Everyone`], because notifications sent while it was away are lost.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{PgStorage, backend};
use crate::storage::{Change, ChangeStore, StorageError};

const CHANNEL: &str = "loyalty_changes";
/// Changes queued for the instance before the listener waits for it to catch up.
const QUEUE: usize = 4_096;

#[async_trait]
impl ChangeStore for PgStorage {
    fn shared(&self) -> bool {
        true
    }

    async fn announce(&self, change: Change) -> Result<(), StorageError> {
        let payload = match &change {
            Change::Member(id) => format!("{}|m|{id}", self.instance),
            Change::Everyone => format!("{}|*", self.instance),
        };
        let client = self.client().await?;
        client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await
            .map_err(backend)?;
        Ok(())
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
        let Some(change) = parse(&payload, instance) else {
            continue;
        };
        if tx.send(change).await.is_err() {
            driver.abort();
            return Ok(());
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

/// The change a payload announces, unless this instance sent it or it is not one of ours.
fn parse(payload: &str, instance: &str) -> Option<Change> {
    let mut parts = payload.splitn(3, '|');
    let from = parts.next()?;
    if from == instance {
        return None;
    }
    match (parts.next()?, parts.next()) {
        ("m", Some(member)) if !member.is_empty() => Some(Change::Member(member.to_string())),
        ("*", None) => Some(Change::Everyone),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_parsed_and_an_instances_own_are_skipped() {
        assert_eq!(
            parse("b|m|mbr_1", "a"),
            Some(Change::Member("mbr_1".into()))
        );
        assert_eq!(parse("b|*", "a"), Some(Change::Everyone));
        assert_eq!(parse("a|m|mbr_1", "a"), None);
        for junk in ["", "b", "b|m", "b|m|", "b|x|y", "b|*|extra"] {
            assert_eq!(parse(junk, "a"), None, "{junk}");
        }
    }
}
