//! Runs a reconcile's writes as they are planned: plans made while earlier writes are still in
//! flight add to the same pipeline (a storm of deletions noticed over many events is written as
//! each deletion is seen, not pass after pass). A write of wave `w` starts once no write of a
//! lower wave is waiting or in flight and every CRD written in one is established; at most
//! [`IN_FLIGHT`] writes of one KfDef are in flight.

use super::Context;
use super::cluster::{ApplyError, Cluster};
use super::inventory::{ObjectId, WAVES};
use super::plan::{Heal, Write};
use super::status;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;

/// Writes (and lookups) in flight at once for one KfDef.
pub const IN_FLIGHT: usize = 32;
/// How long a CRD written is waited for to be established before what needs it is written
/// anyway (and may be refused, then retried).
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often it looks (custom objects of a re-created CRD wait on it).
const ESTABLISH_POLL: Duration = Duration::from_millis(5);

/// The result of executing one write: what the rest of the reconcile needs of it (the object
/// itself is dropped as soon as it is written: an install holds at most the writes in flight).
pub struct Written {
    pub id: ObjectId,
    pub app: usize,
    pub heal: Option<Heal>,
    /// For a heal of a deleted object: how long it was gone (from the deletion's watch event
    /// to the write's answer).
    pub gone_for: Option<Duration>,
    pub result: Result<(), ApplyError>,
}

/// What finished.
enum Step {
    Written { wave: usize, written: Written },
    Established { wave: usize },
}

/// The pipeline of one reconcile's writes.
pub struct Executor<'c> {
    ctx: &'c Context,
    /// The cluster as the KfDef writes to it (kfop itself, or its service account).
    writer: &'c Cluster,
    /// Planned writes not started yet, by wave.
    waiting: Vec<VecDeque<Write>>,
    /// Per wave: writes in flight and CRDs being waited for.
    busy: Vec<usize>,
    running: FuturesUnordered<BoxFuture<'c, Step>>,
}

impl<'c> Executor<'c> {
    /// An empty pipeline.
    pub fn new(ctx: &'c Context, writer: &'c Cluster) -> Self {
        Self {
            ctx,
            writer,
            waiting: vec![VecDeque::new(); WAVES as usize],
            busy: vec![0; WAVES as usize],
            running: FuturesUnordered::new(),
        }
    }

    /// Queues writes, wave by wave (`writes[w]` is wave `w`), and starts what may start.
    pub fn add(&mut self, writes: Vec<Vec<Write>>) {
        for (wave, writes) in writes.into_iter().enumerate() {
            let index = wave.min(self.waiting.len() - 1);
            self.waiting[index].extend(writes);
        }
        self.start();
    }

    /// The next write to finish (`None` when idle). CRDs written are then waited for before the
    /// next wave starts.
    pub async fn next(&mut self) -> Option<Written> {
        loop {
            let step = self.running.next().await?;
            let finished = match step {
                Step::Written { wave, written } => {
                    if written.result.is_ok() && written.id.is_crd() {
                        self.busy[wave] += 1;
                        let (ctx, id) = (self.ctx, written.id.clone());
                        self.running.push(Box::pin(async move {
                            wait_established(ctx, &id).await;
                            Step::Established { wave }
                        }));
                    }
                    self.busy[wave] -= 1;
                    Some(written)
                }
                Step::Established { wave } => {
                    self.busy[wave] -= 1;
                    None
                }
            };
            self.start();
            if finished.is_some() {
                return finished;
            }
        }
    }

    /// Starts waiting writes: lowest wave first, none of a wave while a lower one is unfinished.
    fn start(&mut self) {
        for wave in 0..self.waiting.len() {
            while self.running.len() < IN_FLIGHT {
                let Some(write) = self.waiting[wave].pop_front() else {
                    break;
                };
                self.busy[wave] += 1;
                let (ctx, writer) = (self.ctx, self.writer);
                self.running.push(Box::pin(async move {
                    let result = writer.apply(&write.object).await;
                    let result = result.map(|version| {
                        if let Some(version) = version {
                            ctx.watches.wrote(&write.object.id, version);
                        }
                    });
                    // Written: whatever deletion of it was seen is over.
                    let gone_for = result
                        .is_ok()
                        .then(|| ctx.watches.back(&write.object.id))
                        .flatten()
                        .filter(|_| write.heal.is_some());
                    Step::Written {
                        wave,
                        written: Written {
                            id: write.object.id,
                            app: write.app,
                            heal: write.heal,
                            gone_for,
                            result,
                        },
                    }
                }));
            }
            if self.busy[wave] > 0 || !self.waiting[wave].is_empty() {
                break;
            }
        }
    }
}

/// Waits until the CRD `id` is established (or the timeout passes).
async fn wait_established(ctx: &Context, id: &ObjectId) {
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let established = ctx
            .cluster
            .get(id, "v1")
            .await
            .ok()
            .flatten()
            .and_then(|o| serde_json::to_value(o).ok())
            .and_then(|v| status::readiness(&v))
            .unwrap_or(false);
        if established || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(ESTABLISH_POLL).await;
    }
}
