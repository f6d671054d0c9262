//! Consumer groups over Redis Streams groups: each message to one member,
//! automatic or manual acknowledgement, redelivery of what an idle member
//! holds (with delivery counts), dead letters at a delivery limit.

use std::collections::VecDeque;
use std::time::Duration;

use redis::Value;

use crate::{
    field, parse_entries, seq, text, Blocking, Error, Message, Read, Record, RecvError, Start, Topic,
    TopicConfig, BLOCK,
};

/// How a group's members acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckMode {
    /// A message is acknowledged when it is handed to a member.
    Auto,
    /// A member acknowledges with [`Member::ack`]; what it holds longer than
    /// [`GroupConfig::ack_timeout`] goes to another member.
    Manual,
}

/// A group's settings (every member of a group should use the same).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupConfig {
    /// Automatic or manual acknowledgement.
    pub ack: AckMode,
    /// Manual mode: how long a member may hold a message before another
    /// member may take it.
    pub ack_timeout: Duration,
    /// Manual mode: after this many deliveries a message becomes a dead
    /// letter (published to `<topic>.dead-letters`, then acknowledged).
    pub max_deliveries: Option<u64>,
    /// Where a new group starts (`Earliest` or `Latest`).
    pub start: Start,
    /// Where dead letters go; `None`: `<topic>.dead-letters`.
    pub dead_letters: Option<String>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            ack: AckMode::Auto,
            ack_timeout: Duration::from_secs(30),
            max_deliveries: None,
            start: Start::Latest,
            dead_letters: None,
        }
    }
}

impl GroupConfig {
    /// Manual acknowledgement with this ack timeout.
    #[must_use]
    pub fn manual(mut self, ack_timeout: Duration) -> Self {
        self.ack = AckMode::Manual;
        self.ack_timeout = ack_timeout;
        self
    }

    /// Sets [`max_deliveries`](Self::max_deliveries).
    #[must_use]
    pub fn max_deliveries(mut self, max: Option<u64>) -> Self {
        self.max_deliveries = max;
        self
    }

    /// Sets [`start`](Self::start).
    #[must_use]
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Sets [`dead_letters`](Self::dead_letters), the topic dead letters
    /// go to.
    #[must_use]
    pub fn dead_letters(mut self, topic: Option<String>) -> Self {
        self.dead_letters = topic;
        self
    }
}

/// A message handed to a group member.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The message.
    pub record: Record,
    /// How many times the group has delivered it, this time included.
    pub deliveries: u64,
}

/// Where a consumer group stands ([`Topic::group_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// Messages published that the group has not handed to any member yet.
    pub lag: u64,
    /// Messages handed to members and not acknowledged yet.
    pub pending: u64,
    /// Members the server knows (including ones that went away holding
    /// nothing, until they are removed).
    pub members: usize,
    /// The first offset the group has not processed: its oldest message
    /// handed out and not acknowledged, or else the next it will hand
    /// out. Everything below it is processed.
    pub first_unprocessed: u64,
    /// Messages published from [`first_unprocessed`](Self::first_unprocessed)
    /// on: what the group has not handed out, and everything from its
    /// oldest message not acknowledged on (messages acknowledged out of
    /// order above it included).
    pub unprocessed: u64,
}

/// One member of a consumer group, with its own connection.
pub struct Member {
    topic: Topic,
    group: String,
    name: String,
    config: GroupConfig,
    conn: Blocking,
    buffer: VecDeque<Delivery>,
    /// A read was dropped before its reply: the server may have made a
    /// message pending to this member that it never saw.
    unsure: bool,
    /// Where the next take-over scan of the pending list starts.
    claim_cursor: String,
    /// When this member last looked for messages to take over.
    last_reclaim: Option<std::time::Instant>,
    /// The last read saw that the group lost messages to eviction (the
    /// server counts them as it trims): taken after the read.
    lost_seen: bool,
    /// Messages the group lost that this member took to report, as a
    /// [`RecvError::Lagged`] before anything else.
    lost: u64,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("group", &self.group)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Topic {
    /// Joins (creating if needed) the consumer group `group` as the member
    /// `member` (names must be unique within the group).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; [`Error::OutOfRange`] when the group is new and
    /// its start is an offset outside the retained window (it would wait
    /// at an offset past the end, and skip the messages published below
    /// it).
    pub async fn join(&self, group: &str, member: &str, config: GroupConfig) -> Result<Member, Error> {
        if let Start::Offset(offset) = config.start {
            let (low, high) = self.bounds().await?;
            if !(low..=high).contains(&offset) && !self.has_group(group).await? {
                return Err(Error::OutOfRange { offset, low, high });
            }
        }
        let from = match config.start {
            // Handed out through the last message trimmed (entry 0-s is
            // offset s - 1), so that its lag counts what is retained, as in
            // memory: at "0", its lag counted every message the topic ever
            // trimmed, none of which it will read or be told of.
            Start::Earliest => format!("0-{}", self.bounds().await?.0),
            Start::Latest => "$".to_string(),
            Start::Offset(o) => format!("0-{o}"),
        };
        let created: Result<Value, Error> = self
            .store
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.log)
                    .arg(group)
                    .arg(from)
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Ok(_) => {}
            // Created already (by another member, or by this call before a
            // lost reply).
            Err(Error::Redis(e)) if e.to_string().contains("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        // Known to the server (and counted) from now, not from its first read.
        let _: Value = self
            .store
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATECONSUMER")
                    .arg(&self.log)
                    .arg(group)
                    .arg(member),
            )
            .await?;
        let conn = Blocking::new(&self.store).await?;
        Ok(Member {
            topic: self.clone(),
            group: group.to_string(),
            name: member.to_string(),
            config,
            conn,
            buffer: VecDeque::new(),
            // Also covers a member of this name that went away holding
            // messages.
            unsure: true,
            claim_cursor: "0-0".to_string(),
            last_reclaim: None,
            lost_seen: false,
            lost: 0,
        })
    }

    /// Whether the consumer group `group` exists on this topic.
    async fn has_group(&self, group: &str) -> Result<bool, Error> {
        let groups: Result<Value, Error> = self
            .store
            .query(redis::cmd("XINFO").arg("GROUPS").arg(&self.log))
            .await;
        let groups = match groups {
            Ok(v) => v,
            // No stream yet: no group either.
            Err(Error::Redis(e)) if e.to_string().contains("no such key") => return Ok(false),
            Err(e) => return Err(e),
        };
        let Value::Array(groups) = groups else {
            return Err(Error::Protocol(format!("XINFO GROUPS: {groups:?}")));
        };
        Ok(groups
            .iter()
            .any(|g| field(g, "name").and_then(|n| text(Some(n))) == Some(group)))
    }

    /// Acknowledges the message at `offset` for the group `group` over the
    /// store's shared connection (a member's [`Member::ack`] without the
    /// member): it will not be delivered again. Acknowledging twice, or
    /// an offset the group never handed out, does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn ack(&self, group: &str, offset: u64) -> Result<(), Error> {
        let _: u64 = self
            .store
            .query(
                redis::cmd("XACK")
                    .arg(&self.log)
                    .arg(group)
                    .arg(format!("0-{}", offset.saturating_add(1))),
            )
            .await?;
        Ok(())
    }

    /// Hands the message at `offset` back to the group `group` for another
    /// member (a negative acknowledgement), if the member `member` holds
    /// it: it is marked idle for `ack_timeout`, so the next member that
    /// looks for idle messages takes it over, with its delivery count
    /// raised. A message that is not pending to `member` (acknowledged
    /// already, or taken over by another member) is left alone, in the
    /// same atomic call.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn release(
        &self,
        group: &str,
        member: &str,
        offset: u64,
        ack_timeout: Duration,
    ) -> Result<(), Error> {
        self.release_held(group, member, offset, ack_timeout, None).await
    }

    /// `memq_release`: hands `offset` back if `member` holds it, with its
    /// delivery count set to `count` when given.
    async fn release_held(
        &self,
        group: &str,
        member: &str,
        offset: u64,
        ack_timeout: Duration,
        count: Option<u64>,
    ) -> Result<(), Error> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("memq_release")
            .arg(1)
            .arg(&self.log)
            .arg(group)
            .arg(member)
            .arg(format!("0-{}", offset.saturating_add(1)))
            .arg(millis(ack_timeout));
        if let Some(count) = count {
            cmd.arg(count);
        }
        let _: Value = self.store.query(&cmd).await?;
        Ok(())
    }

    /// Restarts the ack timeout of every message the member `member` of
    /// the group `group` holds (a member's keep-alive: for long work, so
    /// that its messages are not taken over meanwhile), in one atomic
    /// call; their delivery counts stay. Returns how many it holds.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] (`NOGROUP` for a group that does not exist).
    pub async fn keep_alive(&self, group: &str, member: &str) -> Result<u64, Error> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("memq_keep_alive")
            .arg(1)
            .arg(&self.log)
            .arg(group)
            .arg(member);
        self.store.query(&cmd).await
    }

    /// As [`release`](Self::release) (only if `member` holds it), for a
    /// message the member read and never handed on (a read ahead of a
    /// member going away): its delivery count goes back to what it was
    /// before that read (`deliveries` counts it), so the member that takes
    /// it over gets the count a first delivery to it would have.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn release_unseen(
        &self,
        group: &str,
        member: &str,
        offset: u64,
        deliveries: u64,
        ack_timeout: Duration,
    ) -> Result<(), Error> {
        self.release_held(
            group,
            member,
            offset,
            ack_timeout,
            Some(deliveries.saturating_sub(1)),
        )
        .await
    }

    /// Hands every message the member `member` of the group `group` holds
    /// back to the group, as [`release`](Self::release) does for one: for
    /// a member that is gone (its process dropped it), so that the others
    /// take its messages over at their next look rather than after the ack
    /// timeout. Returns how many it handed back. The member stays known to
    /// the server (deleting it would delete what it holds).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; [`Error::Protocol`] for a reply of another shape.
    pub async fn release_member(
        &self,
        group: &str,
        member: &str,
        ack_timeout: Duration,
    ) -> Result<u64, Error> {
        /// Entries handed back per call.
        const ROUND: u64 = 512;
        let mut from = "-".to_string();
        let mut released = 0;
        loop {
            // What it holds and the claim back in one call
            // (`memq_release_all`): an entry another member took over
            // between a look and a claim would be claimed back from it,
            // and delivered a third time.
            let (n, last): (u64, String) = self
                .store
                .query(
                    redis::cmd("FCALL")
                        .arg("memq_release_all")
                        .arg(1)
                        .arg(&self.log)
                        .arg(group)
                        .arg(member)
                        .arg(millis(ack_timeout))
                        .arg(ROUND)
                        .arg(&from),
                )
                .await?;
            released += n;
            if n < ROUND {
                return Ok(released);
            }
            // The entries claimed stay this member's: go on after them.
            from = format!("({last}");
        }
    }

    /// Where the group `group` stands: `None` when there is no such group.
    ///
    /// Offsets are dense, so the lag is exact: the messages published
    /// after the last one the group handed out.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn group_stats(&self, group: &str) -> Result<Option<GroupStats>, Error> {
        Ok(self
            .all_group_stats()
            .await?
            .into_iter()
            .find_map(|(name, stats)| (name == group).then_some(stats)))
    }

    /// Where each of the topic's consumer groups stands, by name (as
    /// [`group_stats`](Self::group_stats), in one call).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn all_group_stats(&self) -> Result<Vec<(String, GroupStats)>, Error> {
        let (_, high) = self.bounds().await?;
        let groups: Value = match self
            .store
            .query(redis::cmd("XINFO").arg("GROUPS").arg(&self.log))
            .await
        {
            Ok(v) => v,
            // No stream yet: no group either.
            Err(Error::Redis(e)) if e.to_string().contains("no such key") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let Value::Array(groups) = groups else {
            return Err(Error::Protocol(format!("{groups:?}")));
        };
        let mut all = Vec::with_capacity(groups.len());
        for g in &groups {
            let bad = || Error::Protocol(format!("{g:?}"));
            let name = text(field(g, "name")).ok_or_else(bad)?;
            let number = |name: &str| match field(g, name) {
                Some(Value::Int(n)) => Some(*n as u64),
                _ => None,
            };
            // Entry 0-s is offset s - 1: handed out through offset s - 1.
            let delivered = field(g, "last-delivered-id").and_then(seq).ok_or_else(bad)?;
            let pending = number("pending").ok_or_else(bad)?;
            let first_unprocessed = match pending {
                0 => delivered,
                _ => self
                    .oldest_pending(name)
                    .await?
                    .map_or(delivered, |o| o.min(delivered)),
            };
            all.push((
                name.to_string(),
                GroupStats {
                    lag: high.saturating_sub(delivered),
                    pending,
                    members: number("consumers").ok_or_else(bad)? as usize,
                    first_unprocessed,
                    unprocessed: high.saturating_sub(first_unprocessed),
                },
            ));
        }
        Ok(all)
    }

    /// The offset of the oldest message the group `group` has handed out
    /// and not had acknowledged, if any (`XPENDING`'s summary).
    async fn oldest_pending(&self, group: &str) -> Result<Option<u64>, Error> {
        let reply: Value = self
            .store
            .query(redis::cmd("XPENDING").arg(&self.log).arg(group))
            .await?;
        match reply {
            Value::Array(parts) => match parts.get(1) {
                Some(Value::Nil) | None => Ok(None),
                // Entry 0-s is offset s - 1.
                Some(id) => Ok(seq(id).and_then(|s| s.checked_sub(1))),
            },
            other => Err(Error::Protocol(format!("{other:?}"))),
        }
    }

    /// How many messages the group `group` has handed out and not had
    /// acknowledged.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn pending(&self, group: &str) -> Result<u64, Error> {
        let reply: Value = self
            .store
            .query(redis::cmd("XPENDING").arg(&self.log).arg(group))
            .await?;
        match reply {
            Value::Array(parts) => match parts.first() {
                Some(Value::Int(n)) => Ok(*n as u64),
                _ => Err(Error::Protocol(format!("{parts:?}"))),
            },
            other => Err(Error::Protocol(format!("{other:?}"))),
        }
    }
}

impl Member {
    /// Waits for the next message for this member: first what idle members
    /// held too long (manual mode), then new messages.
    ///
    /// Cancel safe: a message is taken off this member's buffer only once
    /// its automatic acknowledgement is done.
    ///
    /// # Errors
    ///
    /// [`RecvError::Store`] when Redis fails; with [`Error::TopicGone`]
    /// once the topic was deleted (by any process, also when it was created
    /// again since: its messages are another topic's) or lost with the
    /// server's data; with [`Error::Malformed`] once for an entry that is
    /// no message (acknowledged: no member could read it).
    /// [`RecvError::Lagged`] with the number of messages the group lost to
    /// retention (trimmed before any member read them: the server counts
    /// them as it trims), told to the one member whose read finds it.
    /// Messages that expire while read ahead are acknowledged and never
    /// handed out.
    pub async fn recv(&mut self) -> Result<Delivery, RecvError> {
        loop {
            // What the group lost to eviction comes first (exact: the
            // server counted it as it trimmed).
            self.take_lost().await?;
            if self.lost > 0 {
                return Err(RecvError::Lagged(std::mem::take(&mut self.lost)));
            }
            if let Some(d) = self.buffer.front().cloned() {
                // Expired since it was read: acknowledged, never handed out.
                let expired = d.record.is_expired();
                if self.config.ack == AckMode::Auto || expired {
                    self.xack(d.record.offset).await?;
                }
                self.buffer.pop_front();
                if expired {
                    continue;
                }
                return Ok(d);
            }
            // Messages idle past the ack timeout are looked for now and then
            // (a fraction of the timeout, at most a second apart), not before
            // every read: that was a round trip per message.
            let due = self
                .last_reclaim
                .is_none_or(|t| t.elapsed() >= (self.config.ack_timeout / 4).min(Duration::from_secs(1)));
            if self.config.ack == AckMode::Manual && due {
                self.reclaim().await?;
                if !self.buffer.is_empty() {
                    // Found one: look again next time, there may be more.
                    continue;
                }
                self.last_reclaim = Some(std::time::Instant::now());
            }
            // Wake up in time to reclaim what idles meanwhile.
            let block = match self.config.ack {
                AckMode::Manual => BLOCK.min(self.config.ack_timeout),
                AckMode::Auto => BLOCK,
            };
            self.read_new(block).await?;
        }
    }

    /// Acknowledges the message at `offset` (manual mode).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn ack(&mut self, offset: u64) -> Result<(), Error> {
        self.xack(offset).await
    }

    async fn xack(&mut self, offset: u64) -> Result<(), Error> {
        self.topic.ack(&self.group, offset).await
    }

    async fn read_new(&mut self, block: Duration) -> Result<(), Error> {
        if self.unsure && self.config.ack == AckMode::Auto {
            // A read was dropped after the server may have handed this
            // member a message: what is pending to it comes first. (In
            // auto mode nothing handed out stays pending; in manual mode
            // the ack timeout brings such a message back.)
            let mut own = redis::cmd("XREADGROUP");
            own.arg("GROUP")
                .arg(&self.group)
                .arg(&self.name)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(&self.topic.log)
                .arg("0");
            let reply = match self.conn.query_pipe(&self.checked(own), Duration::ZERO).await {
                Ok(replies) => self.of_this_topic(replies).await?,
                Err(e) => return Err(self.read_failed(e).await),
            };
            // Trimmed since it was handed over: nothing to deliver.
            let Read {
                records,
                gone,
                malformed,
            } = parse_entries(&reply)?;
            if let Some(&offset) = gone.first() {
                self.xack(offset).await?;
                return Ok(());
            }
            if let Some((offset, reason)) = malformed {
                return Err(self.skip_malformed(offset, reason).await);
            }
            if let Some(record) = self.drop_expired(records).await?.into_iter().next() {
                let deliveries = self.deliveries(record.offset).await?;
                self.buffer.push_back(Delivery { record, deliveries });
                return Ok(());
            }
            self.unsure = false;
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            // One at a time: what a member reads becomes pending to it, so it
            // reads only what it hands out (a read-ahead buffer would hold
            // messages nobody processes, redelivered or lost with it).
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.topic.log)
            .arg(">");
        // Until the reply is in the buffer, a dropped read (or a lost
        // connection) may have left a message pending to this member: the
        // next read looks there first.
        self.unsure = true;
        let reply = match self.conn.query_once_pipe(&self.checked(cmd), block).await {
            Err(Error::OutcomeUnknown(_)) => return Ok(()),
            Err(e) => return Err(self.read_failed(e).await),
            Ok(replies) => self.of_this_topic(replies).await?,
        };
        let Read {
            records, malformed, ..
        } = parse_entries(&reply)?;
        for record in self.drop_expired(records).await? {
            self.buffer.push_back(Delivery {
                record,
                deliveries: 1,
            });
        }
        self.unsure = false;
        if let Some((offset, reason)) = malformed {
            return Err(self.skip_malformed(offset, reason).await);
        }
        Ok(())
    }

    /// `read` after a check of the topic's incarnation, in one round trip:
    /// a read counts only on the topic this member joined, not on one
    /// deleted and created again under its name (whose offsets start over,
    /// and whose group may have the same name).
    fn checked(&self, read: redis::Cmd) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(&self.topic.meta).arg("incarnation");
        pipe.add_command(read);
        // Whether the group lost messages to eviction, asked as the read
        // returns (after its wait): a trim that made the read skip them
        // is seen, and they are reported (`take_lost`) before what the
        // read brought.
        pipe.cmd("HEXISTS").arg(&self.topic.meta).arg(self.lost_field());
        pipe
    }

    /// The meta hash's field where the server counts what this member's
    /// group lost to eviction (`count_group_losses` in `memq.lua`).
    fn lost_field(&self) -> String {
        format!("lost:{}", self.group)
    }

    /// Takes what the group lost to eviction, if the last read saw any,
    /// for this member to report first (another member may have taken it
    /// meanwhile: then nothing).
    async fn take_lost(&mut self) -> Result<(), Error> {
        if !std::mem::take(&mut self.lost_seen) {
            return Ok(());
        }
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("memq_take_lost")
            .arg(1)
            .arg(&self.topic.meta)
            .arg(&self.group);
        // Asked again after a lost connection: a take whose reply was lost
        // loses the report either way, never a message.
        let n: u64 = match self.topic.store.query(&cmd).await {
            Ok(n) => n,
            // The library of an older version of this crate, loaded by a
            // process of that version: it counts no losses either.
            Err(Error::Redis(e)) if e.to_string().contains("Function not found") => 0,
            Err(e) => return Err(e),
        };
        self.lost = self.lost.saturating_add(n);
        Ok(())
    }

    /// The read's reply from the replies of a [`checked`](Self::checked)
    /// pipeline; [`Error::TopicGone`] when the topic is not the one this
    /// member joined (what the read took from the new topic is handed back
    /// to its group first, untouched).
    async fn of_this_topic(&mut self, mut replies: Vec<Value>) -> Result<Value, Error> {
        // incarnation, the read, whether the group lost messages.
        let (Some(lost), Some(read), Some(incarnation), true) =
            (replies.pop(), replies.pop(), replies.first(), replies.len() == 1)
        else {
            return Err(Error::Protocol(format!("{replies:?}")));
        };
        self.lost_seen = matches!(lost, Value::Int(1));
        if text(Some(incarnation)) == Some(self.topic.incarnation.as_str()) {
            return Ok(read);
        }
        if let Ok(taken) = parse_entries(&read) {
            let offsets = taken
                .records
                .iter()
                .map(|r| r.offset)
                .chain(taken.gone)
                .chain(taken.malformed.map(|m| m.0));
            for offset in offsets.collect::<Vec<_>>() {
                // Best effort: if this fails, the ack timeout hands it on.
                let _ = self.hand_back(offset).await;
            }
        }
        Err(Error::TopicGone(self.topic.name.clone()))
    }

    /// What a failed read means: [`Error::TopicGone`] when the topic is gone
    /// (a read waiting while its stream is deleted is answered `UNBLOCKED`,
    /// one on a stream or group that is no more `NOGROUP`), else `e`.
    async fn read_failed(&mut self, e: Error) -> Error {
        // A server out of reach (after reconnecting for 30 s) is not asked
        // again: that would reconnect for 30 s more.
        if !matches!(e, Error::Redis(_)) || e.is_unavailable() {
            return e;
        }
        let incarnation = self
            .conn
            .query(redis::cmd("HGET").arg(&self.topic.meta).arg("incarnation"))
            .await;
        match incarnation {
            Ok(v) if text(Some(&v)) != Some(self.topic.incarnation.as_str()) => {
                Error::TopicGone(self.topic.name.clone())
            }
            _ => e,
        }
    }

    /// Hands the message at `offset`, which this member read from a topic
    /// it did not join, back to that topic's group as if never delivered:
    /// idle past the ack timeout, so the next member that looks takes it,
    /// with its delivery count back to 0.
    async fn hand_back(&mut self, offset: u64) -> Result<(), Error> {
        self.topic
            .release_held(&self.group, &self.name, offset, self.config.ack_timeout, Some(0))
            .await
    }

    /// Acknowledges the malformed entry at `offset` (no member could read
    /// it: offering it again would only report it again) and returns the
    /// error that reports it.
    async fn skip_malformed(&mut self, offset: u64, reason: String) -> Error {
        if let Err(e) = self.xack(offset).await {
            return e;
        }
        Error::Malformed {
            topic: self.topic.name.clone(),
            offset,
            reason,
        }
    }

    /// Takes over messages other members held longer than the ack
    /// timeout; those past the delivery limit become dead letters.
    async fn reclaim(&mut self) -> Result<(), Error> {
        let idle = millis(self.config.ack_timeout);
        // Checked first, in a round trip of its own (this runs about once
        // a second at most): a claim from a topic created again under the
        // name would take another topic's message and raise its count.
        let incarnation: Value = self
            .topic
            .store
            .query(redis::cmd("HGET").arg(&self.topic.meta).arg("incarnation"))
            .await?;
        if text(Some(&incarnation)) != Some(self.topic.incarnation.as_str()) {
            return Err(Error::TopicGone(self.topic.name.clone()));
        }
        let claimed: Result<Value, Error> = self
            .topic
            .store
            .query(
                redis::cmd("XAUTOCLAIM")
                    .arg(&self.topic.log)
                    .arg(&self.group)
                    .arg(&self.name)
                    .arg(idle)
                    .arg(&self.claim_cursor)
                    .arg("COUNT")
                    .arg(1),
            )
            .await;
        let reply = match claimed {
            Ok(reply) => reply,
            Err(e) => return Err(self.read_failed(e).await),
        };
        let Value::Array(parts) = &reply else {
            return Err(Error::Protocol(format!("{reply:?}")));
        };
        // Go on from where this scan stopped (0-0: from the start again),
        // so messages behind recently claimed ones are reached too.
        self.claim_cursor = match parts.first() {
            Some(Value::BulkString(c)) => String::from_utf8_lossy(c).into_owned(),
            Some(Value::SimpleString(c)) => c.clone(),
            _ => "0-0".to_string(),
        };
        let Some(claimed) = parts.get(1) else {
            return Ok(());
        };
        // Shaped like one stream's entries in an XREAD reply.
        let wrapped = Value::Array(vec![Value::Array(vec![Value::Nil, claimed.clone()])]);
        let Read {
            records, malformed, ..
        } = parse_entries(&wrapped)?;
        if let Some((offset, reason)) = malformed {
            return Err(self.skip_malformed(offset, reason).await);
        }
        for record in self.drop_expired(records).await? {
            let deliveries = self.deliveries(record.offset).await?;
            if self.config.max_deliveries.is_some_and(|max| deliveries > max) {
                self.dead_letter(&record, deliveries - 1).await?;
                continue;
            }
            self.buffer.push_back(Delivery { record, deliveries });
        }
        Ok(())
    }

    /// `records` without the expired ones (topics with a TTL), which are
    /// acknowledged: never delivered, never redelivered.
    async fn drop_expired(&mut self, records: Vec<Record>) -> Result<Vec<Record>, Error> {
        let ttl = self.topic.ttl_ms;
        if ttl == 0 || records.is_empty() {
            return Ok(records);
        }
        let time: Value = self.topic.store.query(&redis::cmd("TIME")).await?;
        let read_at = std::time::Instant::now();
        let now = crate::server_ms(&time).ok_or_else(|| Error::Protocol(format!("{time:?}")))?;
        let mut live = Vec::with_capacity(records.len());
        for mut r in records {
            if r.time_ms.saturating_add(ttl) < now {
                self.xack(r.offset).await?;
            } else {
                // Not handed out once it expires: see `Record::is_expired`.
                r.expire_after(ttl, now, read_at);
                live.push(r);
            }
        }
        Ok(live)
    }

    /// The group's delivery count of the message at `offset`.
    async fn deliveries(&mut self, offset: u64) -> Result<u64, Error> {
        let id = format!("0-{}", offset + 1);
        let reply: Value = self
            .topic
            .store
            .query(
                redis::cmd("XPENDING")
                    .arg(&self.topic.log)
                    .arg(&self.group)
                    .arg(&id)
                    .arg(&id)
                    .arg(1),
            )
            .await?;
        let count = match &reply {
            Value::Array(rows) => match rows.first() {
                Some(Value::Array(row)) => match row.get(3) {
                    Some(Value::Int(n)) => Some(*n as u64),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        count.ok_or_else(|| Error::Protocol(format!("{reply:?}")))
    }

    /// Publishes the message to `<topic>.dead-letters`, then acknowledges
    /// it (a failure between the two leaves it pending: it is offered
    /// again, never lost).
    async fn dead_letter(&mut self, record: &Record, deliveries: u64) -> Result<(), Error> {
        let name = match &self.config.dead_letters {
            Some(name) => name.clone(),
            None => format!("{}.dead-letters", self.topic.name),
        };
        let dead = self.topic.store.topic(&name, TopicConfig::default()).await?;
        // Its key, format and headers, and where it came from.
        let mut headers = record.headers.clone();
        headers
            .insert("memq.dead_letter.topic", self.topic.name.clone())
            .insert("memq.dead_letter.group", self.group.clone());
        if let Some(p) = self.topic.partition {
            headers.insert("memq.dead_letter.partition", p.to_string());
        }
        headers
            .insert("memq.dead_letter.offset", record.offset.to_string())
            .insert("memq.dead_letter.deliveries", deliveries.to_string())
            .insert(
                "memq.dead_letter.reason",
                format!("max_deliveries={}", self.config.max_deliveries.unwrap_or(0)),
            );
        let mut message = Message::new(&record.payload).headers(&headers);
        if let Some(k) = &record.key {
            message = message.key(k);
        }
        if let Some(f) = &record.format {
            message = message.format(f);
        }
        dead.publish_messages(&[message]).await?;
        self.xack(record.offset).await
    }
}

/// `d` in milliseconds for an idle time, at most ten years: the server
/// counts an idle time from now back, and one that reaches before 1970 is
/// taken as 0 (`XCLAIM`), so a message released with it would never be
/// idle enough to be taken over (`Duration::MAX`, "never", is a member
/// never taken over, not a nack never redelivered).
fn millis(d: Duration) -> u64 {
    const LONGEST: u64 = 10 * 365 * 24 * 60 * 60 * 1000;
    u64::try_from(d.as_millis()).map_or(LONGEST, |ms| ms.min(LONGEST))
}
