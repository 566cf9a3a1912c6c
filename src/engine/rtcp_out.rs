//! Reports the proxy writes: one timer per session leg (RFC 3550 §6.2–6.3
//! pacing), each tick building the leg's RR (and XR) with
//! [`rtcp_policy::tick`], protecting it with the receiver's SRTCP keys where
//! the session is SRTP, and queueing it toward the leg's endpoint.

use super::io::{Event, Output, Payload, Transmit};
use super::{leg_route, push_output, rtcp_policy, Engine, SessionId, Side};
use crate::time::MonoTime;
use std::cmp::Reverse;

impl Engine {
    pub(super) fn schedule_report(&mut self, id: SessionId, side: Side, due: MonoTime) {
        if let Some(s) = self.slots.get_mut(id.index as usize).and_then(|s| s.session.as_mut()) {
            s.sides[side.index()].next_report = Some(due);
            self.report_timers
                .push(Reverse((due, id.index, id.generation, side.index() as u8)));
        }
    }

    /// Runs every report tick due by `now`.
    pub(super) fn run_report_timers(&mut self, now: MonoTime) {
        while let Some(Reverse((due, index, generation, side_ix))) = self.report_timers.peek().copied() {
            if due > now {
                break;
            }
            self.report_timers.pop();
            let id = SessionId { index, generation };
            let side = if side_ix == 0 { Side::Client } else { Side::Upstream };
            let wall = self.wall_at(now);
            let unit = self.unit();
            let Some(slot) = self
                .slots
                .get_mut(index as usize)
                .filter(|s| s.generation == generation)
            else {
                continue;
            };
            let Some(session) = slot.session.as_mut() else {
                continue;
            };
            if session.sides[side.index()].next_report != Some(due) {
                continue; // superseded
            }
            let rates = &self.config.relays[usize::from(session.relay)].clock_rates;
            let policy = &self.config.report_policy;
            let td = rtcp_policy::leg_interval(session, side, rates, policy);
            let next = due + rtcp_policy::randomised_interval(td, unit);
            let protect = session.encrypted;
            if protect && !session.crypto.as_ref().is_some_and(|c| c.can_protect_toward(side)) {
                // SRTCP without the receiver's keys: the proxy cannot write
                // reports here.
                self.counters.reports_skipped_encrypted += 1;
            } else {
                let outcome = rtcp_policy::tick(session, side, now, wall, rates, policy);
                let report = match (outcome.report, protect) {
                    (Some(plain), true) => {
                        let mut sealed = Vec::new();
                        match session
                            .crypto
                            .as_mut()
                            .and_then(|c| c.protect_own(side, &plain, &mut sealed))
                        {
                            Some(Ok(())) => Some(sealed),
                            _ => None,
                        }
                    }
                    (report, _) => report,
                };
                if let Some(datagram) = report {
                    session.sides[side.index()].rtcp.reports_generated += 1;
                    self.counters.reports_generated += 1;
                    self.counters.rtcp_by_mode[session.mode.index()].generated += 1;
                    self.counters.report_blocks_generated += outcome.blocks as u64;
                    let (socket, destination) = leg_route(session, &self.config.relays, side, true);
                    let transmit = Transmit {
                        socket,
                        destination,
                        payload: Payload::Owned(datagram),
                    };
                    push_output(
                        &mut self.outputs,
                        &mut self.counters,
                        self.config.max_queued_events,
                        Output::Transmit(transmit),
                    );
                }
                for ssrc in outcome.suppressed {
                    self.counters.suppression_detected += 1;
                    let ev = Event::SuppressionDetected {
                        session: id,
                        side,
                        ssrc,
                    };
                    push_output(
                        &mut self.outputs,
                        &mut self.counters,
                        self.config.max_queued_events,
                        Output::Event(ev),
                    );
                }
            }
            self.schedule_report(id, side, next);
        }
    }
}
