//! Former primaries back: fenced at once, and made replicas of the primary only when they
//! hold nothing it lacks.

use super::*;

impl State {
    /// Fenced servers that answer again are made read-only and, with `auto_rejoin`,
    /// replicas of the primary when they hold nothing it lacks.
    pub(super) async fn rejoin_fenced(&mut self) {
        let Some(primary) = self.primary else { return };
        let fenced: Vec<usize> = (0..self.settings.members.len())
            .filter(|&index| {
                index != primary
                    && self.member(index).health.is_fenced()
                    && !self.rejoin_tried.contains(&index)
                    && self
                        .settings
                        .config
                        .local
                        .as_deref()
                        .is_none_or(|l| l == self.name(index))
            })
            .collect();
        for index in fenced {
            let Ok(mut session) = self.open(index).await else {
                continue;
            };
            self.rejoin_tried.insert(index);
            if let Err(problem) = self.rejoin(index, &mut session, primary).await {
                self.emit(Step::Refused, Some(index), problem);
            }
            session.close().await;
        }
    }

    pub(super) async fn rejoin(
        &mut self,
        index: usize,
        session: &mut Session,
        primary: usize,
    ) -> Result<(), String> {
        let config = self.settings.config.clone();
        let observation = session.observe().await?;
        if !observation.read_only || observation.replica.is_none() {
            let ended = session.fence(Duration::ZERO).await?;
            self.emit(
                Step::Fenced,
                Some(index),
                format!("former primary back: read_only=ON, {ended} client sessions ended"),
            );
        }
        if !config.auto_rejoin {
            return Err(format!(
                "stays read-only and out of the write path: auto_rejoin is off; make it a \
                 replica of {} by hand, then `hafront enable`",
                self.name(primary)
            ));
        }
        let address = self.member(primary).address;
        if observation
            .replica
            .as_ref()
            .is_some_and(|r| r.replicates_from(address) && r.receiving())
        {
            self.member(index).health.set_role(Some(Role::Replica));
            self.set_fenced(index, false);
            return Ok(());
        }
        let promoted_at: GtidPosition = match self.journal.promotion_of(self.name(primary)) {
            Some(position) => position.parse().map_err(|e| format!("journal: {e}"))?,
            None => observation.binlog_pos.clone(),
        };
        decide::may_rejoin(&observation.binlog_pos, &promoted_at).map_err(|why| {
            format!(
                "not rejoined: {why}. It stays read-only and out of the write path; re-clone \
                 it from {}",
                self.name(primary)
            )
        })?;
        session
            .replicate_from(
                address,
                config.heartbeat,
                Some(&self.settings.replication),
                true,
            )
            .await?;
        let deadline = Instant::now() + REJOIN_CONNECT_TIMEOUT;
        loop {
            let replica = session.observe().await?.replica;
            match replica {
                Some(r) if r.receiving() => break,
                Some(r) if r.last_io_errno == ER_GTID_NOT_IN_BINLOG => {
                    let _ = session.stop_replication().await;
                    return Err(format!(
                        "not rejoined: {} refuses its position ({}). It stays read-only and \
                         out of the write path; re-clone it",
                        self.name(primary),
                        r.last_io_error
                    ));
                }
                _ if Instant::now() >= deadline => {
                    return Err(format!(
                        "replication from {} did not connect within {}s",
                        self.name(primary),
                        REJOIN_CONNECT_TIMEOUT.as_secs()
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        // Read-only now: no relay may take it for a primary before its next check says so.
        self.member(index).health.set_role(Some(Role::Replica));
        self.set_fenced(index, false);
        self.emit(
            Step::Rejoined,
            Some(index),
            format!(
                "replicates from {} with GTID, read-only",
                self.name(primary)
            ),
        );
        Ok(())
    }
}
