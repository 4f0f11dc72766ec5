//! Operators' requests: acknowledgement of a failover, and the planned switchover.

use super::*;

impl State {
    pub(super) async fn serve(&mut self, request: Request) -> Result<String, String> {
        match request {
            Request::Acknowledge => {
                let Some(record) = self.journal.last_failover.as_mut() else {
                    return Ok("no failover to acknowledge".to_owned());
                };
                if record.acknowledged {
                    return Ok("the last failover was already acknowledged".to_owned());
                }
                record.acknowledged = true;
                // A failure refused inside the window is acted on now.
                self.handled_failure = None;
                let text = format!(
                    "failover of {} to {} acknowledged: automatic failover is armed again",
                    record.old_primary, record.new_primary
                );
                self.save_journal();
                self.emit(Step::Acknowledged, None, text.clone());
                Ok(text)
            }
            Request::Switchover { to } => {
                if !self.acting() {
                    return Err(format!(
                        "this node does not act on pool {}: VRRP instance {} is not MASTER here",
                        self.settings.pool,
                        self.settings.config.vrrp.as_deref().unwrap_or("?")
                    ));
                }
                let to = match to {
                    Some(name) => Some(self.index(&name).ok_or_else(|| {
                        format!("pool {} has no server {name:?}", self.settings.pool)
                    })?),
                    None => None,
                };
                if self.local().is_some() {
                    self.hand_over(to).await
                } else {
                    self.switch_over(to).await
                }
            }
        }
    }

    /// The server a switchover from `primary` promotes: `to`, or the replica with the least
    /// lag; it must replicate from `primary`, both threads running, within `max_lag`.
    pub(super) fn switchover_target(
        &self,
        primary: usize,
        to: Option<usize>,
        looked: &[Looked],
    ) -> Result<usize, String> {
        let address = self.member(primary).address;
        let max_lag = self.settings.config.max_lag;
        let eligible = |index: usize| -> Result<u64, String> {
            let name = self.name(index);
            if index == primary {
                return Err(format!("{name} is the primary already"));
            }
            if !self.member(index).promotable {
                return Err(format!("{name} is not a failover candidate"));
            }
            let replica = looked[index]
                .as_ref()
                .map_err(|e| format!("{name} cannot be reached: {e}"))?
                .replica
                .as_ref()
                .filter(|r| r.replicates_from(address))
                .ok_or_else(|| format!("{name} does not replicate from {}", self.name(primary)))?;
            if !replica.receiving() || replica.sql_running != "Yes" {
                return Err(format!("{name}'s replication is not running"));
            }
            let lag = replica.seconds_behind.unwrap_or(u64::MAX);
            if Duration::from_secs(lag) > max_lag {
                return Err(format!("{name} lags {lag}s, more than max_lag"));
            }
            Ok(lag)
        };
        match to {
            Some(target) => eligible(target).map(|_| target),
            None => (0..self.settings.members.len())
                .filter_map(|index| eligible(index).ok().map(|lag| (lag, index)))
                .min()
                .map(|(_, index)| index)
                .ok_or_else(|| {
                    format!(
                        "no replica is fit to take over: each must replicate from {} with both \
                         threads running and lag at most max_lag; see `hafront status`",
                        self.name(primary)
                    )
                }),
        }
    }

    /// The planned switchover: the primary made read-only (its writes finish or end, bounded),
    /// the target reaches the primary's position, is promoted, and the old primary and the
    /// other replicas replicate from it. Undone if the target cannot catch up.
    pub(super) async fn switch_over(&mut self, to: Option<usize>) -> Result<String, String> {
        let started = Instant::now();
        let config = self.settings.config.clone();
        let primary = self.primary.ok_or_else(|| {
            "no primary is known in this pool: hafront follows the one writable server \
                 that replicates from nothing; see the REPLICATION table of `hafront status`"
                .to_owned()
        })?;
        let looked = self.look_at_all().await;
        let target = self.switchover_target(primary, to, &looked)?;
        self.emit(
            Step::SwitchoverStarted,
            Some(target),
            format!(
                "planned switchover from {} to {}",
                self.name(primary),
                self.name(target)
            ),
        );
        let mut old = self.open(primary).await?;
        let mut new = self.open(target).await?;
        // No new client reaches the old primary through hafront from here on.
        self.member(primary).health.set_fenced(true);
        let fenced = async {
            let ended = old.fence(config.write_drain).await?;
            let readers = old.end_client_sessions().await?;
            let position = old.observe().await?.binlog_pos;
            Ok::<_, String>((ended + readers, position))
        }
        .await;
        let undo = async |old: &mut Session, why: String| {
            let _ = old.execute("SET GLOBAL read_only = OFF").await;
            why
        };
        let (ended, position) = match fenced {
            Ok(done) => done,
            Err(problem) => {
                let why = undo(&mut old, format!("switchover abandoned: {problem}")).await;
                self.member(primary).health.set_fenced(false);
                self.emit(Step::Refused, Some(target), why.clone());
                return Err(why);
            }
        };
        match new.wait_for(&position, config.catch_up_timeout).await {
            Ok(true) => {}
            other => {
                let why = format!(
                    "switchover abandoned: {} did not reach {position} within {}{}; {} is \
                     writable again",
                    self.name(target),
                    humantime::format_duration(config.catch_up_timeout),
                    other.err().map(|e| format!(" ({e})")).unwrap_or_default(),
                    self.name(primary)
                );
                let why = undo(&mut old, why).await;
                self.member(primary).health.set_fenced(false);
                self.emit(Step::Refused, Some(target), why.clone());
                return Err(why);
            }
        }
        let semi_sync = looked[primary]
            .as_ref()
            .map_or(self.semi_sync, |o| o.semi_sync_primary);
        new.promote(semi_sync)
            .await
            .map_err(|problem| format!("promoting {}: {problem}", self.name(target)))?;
        self.member(target).health.set_role(Some(Role::Primary));
        let name = self.name(target).to_owned();
        self.journal.promoted(&name, position.to_string());
        self.save_journal();
        self.primary = Some(target);
        self.handled_failure = None;
        self.emit(
            Step::Promoted,
            Some(target),
            format!(
                "writable at {position}, {} ms into the switchover ({ended} sessions ended on {})",
                started.elapsed().as_millis(),
                self.name(primary)
            ),
        );
        let others: Vec<usize> = (0..self.settings.members.len())
            .filter(|&index| index != primary && index != target && looked[index].is_ok())
            .collect();
        for index in others {
            if let Ok(mut session) = self.open(index).await {
                self.repoint(index, &mut session, target).await;
                session.close().await;
            }
        }
        let target_address = self.member(target).address;
        match old
            .replicate_from(
                target_address,
                config.heartbeat,
                Some(&self.settings.replication),
                true,
            )
            .await
        {
            Ok(()) => {
                self.member(primary).health.set_role(Some(Role::Replica));
                self.member(primary).health.set_fenced(false);
                self.emit(
                    Step::Repointed,
                    Some(primary),
                    format!("former primary replicates from {}", self.name(target)),
                );
            }
            Err(problem) => {
                self.set_fenced(primary, true);
                self.emit(
                    Step::Problem,
                    Some(primary),
                    format!("former primary stays read-only, not replicating: {problem}"),
                );
            }
        }
        old.close().await;
        new.close().await;
        let text = format!(
            "switched over from {} to {} in {} ms",
            self.name(primary),
            self.name(target),
            started.elapsed().as_millis()
        );
        self.emit(Step::SwitchedOver, Some(target), text.clone());
        Ok(text)
    }
}
