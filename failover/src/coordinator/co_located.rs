//! Co-located failover: this node's VRRP state drives its own server (promoted as master,
//! fenced otherwise), the first primary at start, and the VIP handed over for a switchover.

use super::*;

impl State {
    /// Co-located: MASTER makes the local server the primary, anything else fences it.
    pub(super) async fn react_co_located(&mut self) {
        let Some(local) = self.local() else { return };
        if !self.acting() {
            self.handled_failure = None;
            if self.primary == Some(local) || !self.member(local).health.is_fenced() {
                self.fence_local(local).await;
            }
            return self.rejoin_fenced().await;
        }
        // A takeover that could not happen yet (replicas still hearing the primary, or the
        // local server not fit to take over) is tried again at every refresh.
        let again = self
            .unconfirmed
            .is_some_and(|(primary, only)| only == Some(local) && self.primary == Some(primary));
        if !again && (self.primary == Some(local) || self.handled_failure == Some(local)) {
            return;
        }
        self.handled_failure = Some(local);
        let own = self.look(local).await;
        if own.is_ok_and(|o| !o.read_only && o.replica.is_none())
            && !self.member(local).health.is_fenced()
        {
            self.primary = Some(local);
            self.unconfirmed = None;
            return;
        }
        let Some(primary) = self.primary else {
            let looked = self.look_at_all().await;
            return self.bootstrap(local, &looked).await;
        };
        // Decided by what answers, not by the health check (which a loaded host can fail):
        // a primary that answers is handed over as planned, nothing lost; one that does not
        // is failed over once its replicas confirm it.
        let looked = self.look_at_all().await;
        if looked[primary].is_err() {
            return self.fail_over(primary, Some(local)).await;
        }
        match self.switchover_target(primary, Some(local), &looked) {
            Ok(_) => {
                self.unconfirmed = None;
                let _ = self.switch_over(Some(local)).await;
            }
            Err(why) => {
                if !again {
                    self.emit(
                        Step::Refused,
                        Some(local),
                        format!(
                            "this node is VRRP master but {} cannot take over from {} yet: \
                             {why}; trying again every second",
                            self.name(local),
                            self.name(primary)
                        ),
                    );
                }
                self.unconfirmed = Some((primary, Some(local)));
            }
        }
    }

    /// No primary yet and this node is master: the local server becomes the primary if it
    /// is the one the others replicate from and nothing is writable (the pool as set up).
    pub(super) async fn bootstrap(&mut self, local: usize, looked: &[Looked]) {
        let address = self.member(local).address;
        let source = looked.iter().enumerate().any(|(index, look)| {
            index != local
                && look.as_ref().is_ok_and(|o| {
                    o.replica
                        .as_ref()
                        .is_some_and(|r| r.replicates_from(address))
                })
        });
        let others_writable = looked
            .iter()
            .enumerate()
            .any(|(index, look)| index != local && look.as_ref().is_ok_and(|o| !o.read_only));
        let own = looked[local].as_ref().ok();
        if !source || others_writable || own.is_none_or(|o| o.replica.is_some()) {
            return self.emit(
                Step::Refused,
                Some(local),
                "this node became VRRP master but the local server is not the replication \
                 source of the pool (or another server is writable): it stays read-only",
            );
        }
        let promoted = async {
            let mut session = self.open(local).await?;
            session.execute("SET GLOBAL read_only = OFF").await?;
            session.close().await;
            Ok::<_, String>(())
        }
        .await;
        match promoted {
            Ok(()) => {
                self.primary = Some(local);
                self.member(local).health.set_role(Some(Role::Primary));
                self.emit(
                    Step::Promoted,
                    Some(local),
                    "the replication source of the pool, read-only at start, is writable now \
                     that this node is VRRP master",
                );
            }
            Err(problem) => self.emit(Step::Problem, Some(local), format!("promoting: {problem}")),
        }
    }

    /// Fences the local server when this node is not VRRP master (co-located).
    pub(super) async fn fence_local(&mut self, local: usize) {
        let Ok(mut session) = self.open(local).await else {
            // Down: it restarts read-only from its options; fenced until it rejoins.
            self.set_fenced(local, true);
            return;
        };
        let observation = session.observe().await;
        if let Ok(observation) = &observation
            && observation.read_only
        {
            session.close().await;
            if self.primary == Some(local) {
                self.primary = None;
            }
            return;
        }
        self.set_fenced(local, true);
        match session.fence(Duration::ZERO).await {
            Ok(ended) => self.emit(
                Step::Fenced,
                Some(local),
                format!("this node is no VRRP master: read_only=ON, {ended} client sessions ended"),
            ),
            Err(problem) => self.emit(Step::Problem, Some(local), format!("fencing: {problem}")),
        }
        session.close().await;
        if self.primary == Some(local) {
            self.primary = None;
        }
    }

    /// Co-located switchover: this node hands the VIP over; the target's node, master then,
    /// takes the primary role over as a planned switchover (this node fences its server as
    /// backup). Answers once the target is writable.
    pub(super) async fn hand_over(&mut self, to: Option<usize>) -> Result<String, String> {
        let started = Instant::now();
        let local = self.local().expect("co-located");
        if self.primary != Some(local) {
            return Err(format!(
                "the primary is not this node's server {}: run the switchover on the node \
                 that holds the primary",
                self.name(local)
            ));
        }
        let looked = self.look_at_all().await;
        let target = self.switchover_target(local, to, &looked)?;
        let handover = self
            .settings
            .handover
            .clone()
            .ok_or("co-located failover without a VRRP instance to hand over")?;
        self.emit(
            Step::SwitchoverStarted,
            Some(target),
            format!(
                "planned switchover from {} to {}: handing the VIP over; the node that takes it \
                 promotes its server",
                self.name(local),
                self.name(target)
            ),
        );
        self.handled_failure = Some(local);
        handover();
        let deadline = started + self.settings.config.catch_up_timeout + HANDOVER_GRACE;
        loop {
            if let Ok(observation) = self.look(target).await
                && !observation.read_only
                && observation.replica.is_none()
            {
                return Ok(format!(
                    "switched over from {} to {} in {} ms (the VIP moved with it)",
                    self.name(local),
                    self.name(target),
                    started.elapsed().as_millis()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the VIP was handed over but {} is not writable after {} s: see the other \
                     node's log",
                    self.name(target),
                    started.elapsed().as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
