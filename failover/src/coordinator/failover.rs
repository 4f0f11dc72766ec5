//! The automatic failover of a front tier: a dead primary confirmed by its replicas, the most
//! advanced replica promoted once it applied what it received, the others re-pointed.

use super::*;

impl State {
    /// Acts on what changed: a dead primary, a fenced server back, a VRRP transition.
    pub(super) async fn react(&mut self) {
        if self.settings.config.local.is_some() {
            return self.react_co_located().await;
        }
        if !self.acting() {
            return;
        }
        if let Some(primary) = self.primary {
            let down = self.member(primary).health.status() == Status::Down;
            if down && self.handled_failure != Some(primary) {
                self.handled_failure = Some(primary);
                self.fail_over(primary, None).await;
            } else if down && self.unconfirmed == Some((primary, None)) {
                self.fail_over(primary, None).await;
            } else if !down && self.handled_failure == Some(primary) {
                // It answers again and nothing was changed: a new failure counts anew.
                self.handled_failure = None;
                self.unconfirmed = None;
            }
        }
        self.rejoin_fenced().await;
    }

    /// The automatic failover of `primary`: confirmed by its replicas, the most advanced
    /// one (or `only`, co-located) promoted after applying what it received, the others
    /// re-pointed, the old primary fenced out of the write path.
    pub(super) async fn fail_over(&mut self, primary: usize, only: Option<usize>) {
        let started = Instant::now();
        let config = self.settings.config.clone();
        // Asking again while the replicas still hear it: no new alert until something changes.
        let again = self.unconfirmed == Some((primary, only));
        if !again {
            self.emit(
                Step::Started,
                Some(primary),
                "primary down by its health check; asking its replicas",
            );
        }
        if let Some(until) = self.journal.blocked_until(config.block, SystemTime::now()) {
            let last = self.journal.last_failover.clone();
            self.emit(
                Step::Refused,
                Some(primary),
                format!(
                    "automatic failover is blocked until {} after the failover of {} to {}; \
                     acknowledge it with `hafront failover ack {}` to allow another",
                    humantime::format_rfc3339_seconds(until),
                    last.as_ref().map_or("?", |r| r.old_primary.as_str()),
                    last.as_ref().map_or("?", |r| r.new_primary.as_str()),
                    self.settings.pool
                ),
            );
            return;
        }
        let replicas = match self.confirm(primary).await {
            Ok(replicas) => {
                self.unconfirmed = None;
                replicas
            }
            Err(reason) => {
                // It may still die for everyone: asked again at every refresh while down.
                self.unconfirmed = Some((primary, only));
                if again {
                    tracing::debug!(pool = %self.settings.pool, "failover still unconfirmed: {reason}");
                } else {
                    self.emit(
                        Step::Refused,
                        Some(primary),
                        format!("{reason}; asking again every second while it stays down"),
                    );
                }
                return;
            }
        };
        let names: Vec<&str> = replicas.iter().map(|(i, _)| self.name(*i)).collect();
        self.emit(
            Step::Confirmed,
            Some(primary),
            format!(
                "unreachable, and its replicas lost it too ({}) after {} ms",
                names.join(", "),
                started.elapsed().as_millis()
            ),
        );
        // Receive nothing more, all at once (each may wait on the gone primary): a primary
        // coming back cannot feed them meanwhile.
        let mut replicas = replicas;
        let stops = join_all(
            replicas
                .iter_mut()
                .map(|(index, session)| async move { (*index, session.stop_receiver().await) }),
        )
        .await;
        let mut failed = Vec::new();
        for (index, stopped) in stops {
            if let Err(problem) = stopped {
                self.emit(
                    Step::Problem,
                    Some(index),
                    format!("stopping the receiver: {problem}"),
                );
                failed.push(index);
            }
        }
        let mut sessions: Vec<(usize, Session)> = replicas
            .into_iter()
            .filter(|(index, _)| !failed.contains(index))
            .collect();
        match self
            .promote_best(primary, &mut sessions, only, started)
            .await
        {
            Ok(promoted) => {
                self.journal.last_failover = Some(Record {
                    at: journal::unix_seconds(SystemTime::now()),
                    old_primary: self.name(primary).to_owned(),
                    new_primary: self.name(promoted).to_owned(),
                    acknowledged: false,
                });
                self.set_fenced(primary, true);
                self.save_journal();
                for (index, session) in &mut sessions {
                    if *index != promoted {
                        self.repoint(*index, session, promoted).await;
                    }
                }
                self.emit(
                    Step::Fenced,
                    Some(primary),
                    "kept out of the write path while unreachable; it is fenced and rejoined \
                     when it returns",
                );
            }
            Err(refusal) => {
                for (_, session) in &mut sessions {
                    let _ = session.start_receiver().await;
                }
                self.emit(Step::Refused, Some(primary), refusal);
            }
        }
        for (_, session) in sessions {
            session.close().await;
        }
    }

    /// The primary is dead when hafront cannot log in to it and every reachable replica of
    /// it has stopped hearing from it (receiver down, or no event nor heartbeat for a few
    /// heartbeat periods). Returns sessions with those replicas.
    pub(super) async fn confirm(&self, primary: usize) -> Result<Vec<(usize, Session)>, String> {
        let config = &self.settings.config;
        // A live primary heartbeats its replicas every period: one that heard nothing for
        // two and a half periods lost it. The second look happens then, and the primary's
        // login gets until then too.
        let second_look = Instant::now() + (config.heartbeat * 5 / 2).min(config.confirm_timeout);
        let address = self.member(primary).address;
        let primary_login = Session::open(
            address,
            &self.settings.admin,
            config.confirm_timeout,
            self.settings.timeout,
        );
        let first_looks = join_all(
            (0..self.settings.members.len())
                .filter(|&index| index != primary)
                .map(|index| async move {
                    let mut session = self.open(index).await.ok()?;
                    let observation = session.observe().await.ok()?;
                    let replica = observation.replica.filter(|r| r.replicates_from(address))?;
                    Some((index, session, replica))
                }),
        );
        let (login, first_looks) = tokio::join!(
            tokio::time::timeout_at(second_look.into(), primary_login),
            first_looks
        );
        if let Ok(Ok(session)) = login {
            session.close().await;
            return Err(
                "hafront's administrative login to the primary works: its health check \
                        failed but the server answers; no failover"
                    .to_owned(),
            );
        }
        let mut replicas: Vec<(usize, Session, _)> = first_looks.into_iter().flatten().collect();
        if replicas.is_empty() {
            return Err(format!(
                "no replica of {} could be reached to confirm that it is dead; no failover",
                self.name(primary)
            ));
        }
        // Those still connected must show silence for a few heartbeats.
        if replicas.iter().any(|(_, _, replica)| replica.receiving()) {
            tokio::time::sleep_until(second_look.into()).await;
        }
        let mut hearing = Vec::new();
        for (index, session, first) in &mut replicas {
            if !first.receiving() {
                continue;
            }
            match session.observe().await {
                Ok(Observation {
                    replica: Some(now), ..
                }) if now.heard_since(first) => {
                    hearing.push(self.name(*index).to_owned());
                }
                _ => {}
            }
        }
        if !hearing.is_empty() {
            for (_, session, _) in replicas {
                session.close().await;
            }
            return Err(format!(
                "its replicas still receive from it ({}): only hafront lost it; no failover",
                hearing.join(", ")
            ));
        }
        Ok(replicas.into_iter().map(|(i, s, _)| (i, s)).collect())
    }

    /// Picks the replica that received the most, lets it apply its relay log (bounded),
    /// and promotes it. `only` restricts the choice (co-located: the local server).
    pub(super) async fn promote_best(
        &mut self,
        primary: usize,
        sessions: &mut [(usize, Session)],
        only: Option<usize>,
        started: Instant,
    ) -> Result<usize, String> {
        let config = self.settings.config.clone();
        let mut received = Vec::new();
        let others = sessions.len() > 1;
        let mut unfit = Vec::new();
        for (index, session) in sessions.iter_mut() {
            match session.observe().await {
                Ok(Observation {
                    replica: Some(replica),
                    log_slave_updates,
                    ..
                }) => {
                    if others && !log_slave_updates {
                        // Its binary log lacks what it replicated: the others could not
                        // follow it.
                        unfit.push(*index);
                    }
                    received.push((*index, replica.received(), replica.seconds_behind));
                }
                Ok(_) => {}
                Err(problem) => self.emit(
                    Step::Problem,
                    Some(*index),
                    format!("reading its position: {problem}"),
                ),
            }
        }
        let contenders: Vec<Contender> = received
            .iter()
            .map(|(index, position, _)| Contender {
                name: self.name(*index),
                received: position,
                promotable: self.member(*index).promotable
                    && only.is_none_or(|o| o == *index)
                    && !unfit.contains(index),
            })
            .collect();
        let chosen = decide::choose(&contenders).map_err(|refusal| {
            if unfit.is_empty() {
                return refusal;
            }
            let names: Vec<&str> = unfit.iter().map(|&i| self.name(i)).collect();
            format!(
                "{refusal} ({} cannot serve the other replicas: log_slave_updates is off)",
                names.join(", ")
            )
        })?;
        let chosen = chosen.to_owned();
        let chosen = self.index(&chosen).expect("a member");
        let (_, position, lag_now) = received
            .iter()
            .find(|(index, _, _)| *index == chosen)
            .expect("chosen among them");
        let position = position.clone();
        // The lag seen before the failure: once the receiver stops MariaDB reports none.
        let lag = self.lags.get(&chosen).copied().flatten().or(*lag_now);
        if let Some(lag) = lag.filter(|&lag| Duration::from_secs(lag) > config.max_lag) {
            return Err(format!(
                "{} is the most advanced replica but lagged {lag}s behind the primary, more \
                 than max_lag {}: not promoted, clients get errors until an operator decides",
                self.name(chosen),
                humantime::format_duration(config.max_lag)
            ));
        }
        // Semi-synchronous only with a replica left to acknowledge; else every commit
        // would wait (rpl_semi_sync_master_timeout) until one rejoins.
        let semi_sync = self.semi_sync && sessions.len() > 1;
        let session = &mut sessions
            .iter_mut()
            .find(|(index, _)| *index == chosen)
            .expect("chosen among them")
            .1;
        if !session
            .wait_applied(&position, config.catch_up_timeout)
            .await?
        {
            return Err(format!(
                "{} did not apply the relay log it received (up to {position}) within {}: not \
                 promoted, clients get errors until an operator decides",
                self.name(chosen),
                humantime::format_duration(config.catch_up_timeout)
            ));
        }
        session
            .promote(semi_sync)
            .await
            .map_err(|problem| format!("promoting {} failed: {problem}", self.name(chosen)))?;
        let promoted_at = session.observe().await.map(|o| o.current_pos)?;
        let name = self.name(chosen).to_owned();
        self.semi_sync_deferred = self.semi_sync && !semi_sync;
        self.journal.promoted(&name, promoted_at.to_string());
        self.member(chosen).health.set_role(Some(Role::Primary));
        self.set_fenced(chosen, false);
        self.primary = Some(chosen);
        self.handled_failure = None;
        self.emit(
            Step::Promoted,
            Some(chosen),
            format!(
                "new primary of {} at {promoted_at}, {} ms after the failover started",
                self.name(primary),
                started.elapsed().as_millis()
            ),
        );
        Ok(chosen)
    }

    pub(super) async fn repoint(&self, index: usize, session: &mut Session, primary: usize) {
        let config = &self.settings.config;
        let address = self.member(primary).address;
        match session
            .replicate_from(address, config.heartbeat, None, false)
            .await
        {
            Ok(()) => self.emit(
                Step::Repointed,
                Some(index),
                format!(
                    "replicates from {} ({address}) with GTID",
                    self.name(primary)
                ),
            ),
            Err(problem) => self.emit(
                Step::Problem,
                Some(index),
                format!(
                    "could not be re-pointed to {}: {problem}",
                    self.name(primary)
                ),
            ),
        }
    }
}
