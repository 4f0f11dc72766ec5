//! The periodic look at the pool: the primary followed, servers writable beside it fenced,
//! lags and semi-synchronous state, the failover user's grants, and the topology published
//! for status.

use super::*;

impl State {
    /// Observes the pool: the topology for status, replica lags, and the primary.
    pub(super) async fn refresh(&mut self) {
        let looked = self.look_at_all().await;
        // Writable servers relays could send writes to; the primary is the one of them that
        // replicates from nothing.
        let writable: Vec<usize> = (0..looked.len())
            .filter(|&index| {
                looked[index].as_ref().is_ok_and(|o| !o.read_only)
                    && !self.member(index).health.is_fenced()
            })
            .collect();
        let sources: Vec<usize> = writable
            .iter()
            .copied()
            .filter(|&index| looked[index].as_ref().is_ok_and(|o| o.replica.is_none()))
            .collect();
        if let [only] = sources.as_slice()
            && self.primary != Some(*only)
        {
            info!(pool = %self.settings.pool, primary = %self.name(*only), "failover follows this primary");
            self.primary = Some(*only);
            self.handled_failure = None;
        }
        // Co-located, VRRP decides which server is the primary; each node fences its own.
        let front_tier = self.settings.config.local.is_none();
        match self.primary.filter(|primary| writable.contains(primary)) {
            // The one failover follows stays; any other leaves the write path (fenced: made
            // read-only and rejoined by the acting node).
            Some(primary) if front_tier => {
                for &other in writable.iter().filter(|&&index| index != primary) {
                    self.set_fenced(other, true);
                    self.rejoin_tried.remove(&other);
                    self.emit(
                        Step::Fenced,
                        Some(other),
                        format!(
                            "writable beside the primary {}: out of the write path, made \
                             read-only and rejoined by the acting node",
                            self.name(primary)
                        ),
                    );
                }
            }
            _ if writable.len() > 1 && !self.warned_split => {
                let names: Vec<&str> = writable.iter().map(|&i| self.name(i)).collect();
                self.emit(
                    Step::Problem,
                    None,
                    format!(
                        "{} servers are writable ({}): hafront changes nothing here; make all but \
                         one read-only",
                        names.len(),
                        names.join(", ")
                    ),
                );
                self.warned_split = true;
            }
            _ => {}
        }
        if writable.len() <= 1 {
            self.warned_split = false;
        }
        if let Some(primary) = self.primary
            && let Ok(observation) = &looked[primary]
        {
            if self.semi_sync_deferred && self.has_replica(primary, &looked) {
                self.resume_semi_sync(primary).await;
            } else if !self.semi_sync_deferred {
                self.semi_sync = observation.semi_sync_primary;
            }
        }
        let reachable: Vec<usize> = (0..looked.len()).filter(|&i| looked[i].is_ok()).collect();
        for index in reachable {
            if self.grants_checked.insert(index) {
                self.check_grants(index).await;
            }
        }
        for (index, look) in looked.iter().enumerate() {
            if let Ok(observation) = look {
                let lag = observation.replica.as_ref().and_then(|r| r.seconds_behind);
                self.lags.insert(index, lag);
            }
        }
        self.publish(&looked);
    }

    /// Says once per server when the failover's user lacks a privilege a step needs.
    pub(super) async fn check_grants(&self, index: usize) {
        let missing = async {
            let mut session = self.open(index).await?;
            let missing = session.missing_privileges().await;
            session.close().await;
            missing
        }
        .await;
        match missing {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => self.emit(
                Step::Problem,
                Some(index),
                format!(
                    "user {} lacks {}: failover steps on this server will fail; run GRANT {} \
                     ON *.* TO the user",
                    self.settings.admin.user,
                    missing.join(", "),
                    missing.join(", ")
                ),
            ),
            Err(problem) => {
                warn!(pool = %self.settings.pool, server = %self.name(index), "cannot read the failover user's grants: {problem}")
            }
        }
    }

    /// Whether a server replicates from `primary` and receives.
    pub(super) fn has_replica(&self, primary: usize, looked: &[Looked]) -> bool {
        let address = self.member(primary).address;
        looked.iter().flatten().any(|o| {
            o.replica
                .as_ref()
                .is_some_and(|r| r.replicates_from(address) && r.receiving())
        })
    }

    /// Turns semi-synchronous waits on at `primary` now that a replica acknowledges.
    pub(super) async fn resume_semi_sync(&mut self, primary: usize) {
        let resumed = async {
            let mut session = self.open(primary).await?;
            session
                .execute("SET GLOBAL rpl_semi_sync_master_enabled = ON")
                .await?;
            session.close().await;
            Ok::<_, String>(())
        }
        .await;
        match resumed {
            Ok(()) => {
                self.semi_sync_deferred = false;
                info!(pool = %self.settings.pool, primary = %self.name(primary), "a replica follows the primary again: semi-synchronous replication on");
            }
            Err(problem) => {
                warn!(pool = %self.settings.pool, "cannot turn semi-synchronous replication on: {problem}")
            }
        }
    }

    pub(super) fn publish(&self, looked: &[Looked]) {
        let servers = looked
            .iter()
            .enumerate()
            .map(|(index, look)| {
                let member = self.member(index);
                let mut view = ServerReplication {
                    name: member.name.clone(),
                    fenced: member.health.is_fenced(),
                    ..ServerReplication::default()
                };
                match look {
                    Ok(observation) => {
                        view.reachable = true;
                        view.read_only = Some(observation.read_only);
                        view.gtid_position = Some(observation.current_pos.to_string());
                        if let Some(replica) = &observation.replica {
                            view.replicates_from = Some(
                                self.settings
                                    .members
                                    .iter()
                                    .find(|m| replica.replicates_from(m.address))
                                    .map(|m| m.name.clone())
                                    .unwrap_or_else(|| {
                                        format!("{}:{}", replica.master_host, replica.master_port)
                                    }),
                            );
                            view.threads =
                                Some((replica.io_running.clone(), replica.sql_running.clone()));
                            view.lag_seconds = replica.seconds_behind;
                        }
                    }
                    Err(problem) => view.error = Some(problem.clone()),
                }
                view
            })
            .collect();
        let block = self.settings.config.block;
        self.topology.send_replace(Topology {
            primary: self.primary.map(|p| self.name(p).to_owned()),
            acting: self.acting(),
            blocked_until: self
                .journal
                .blocked_until(block, SystemTime::now())
                .map(journal::unix_seconds),
            last_failover: self.journal.last_failover.clone(),
            servers,
            steps: self
                .steps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        });
    }
}
