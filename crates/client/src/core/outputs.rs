//! Output queueing and command framing of [`Core`]: events, call results and batched frames.

use gyre_protocol::{self as proto, codec};

use super::{CallId, CallResult, Core, Inflight, Millis, Output, Pending, TimerKey, backoff};
use crate::Error;
use crate::event::{ClientEvent, SubscriptionEvent};

impl Core {
    pub(super) fn emit(&mut self, ev: ClientEvent) {
        self.out.push_back(Output::Client(ev));
    }

    pub(super) fn emit_sub(&mut self, channel: &str, event: SubscriptionEvent) {
        self.out.push_back(Output::Subscription {
            channel: channel.to_owned(),
            event,
        });
    }

    pub(super) fn resolve(&mut self, call: CallId, result: Result<CallResult, Error>) {
        self.out.push_back(Output::Resolve { call, result });
    }

    pub(super) fn delay(&mut self, attempt: u32, min: Millis, max: Millis) -> Millis {
        backoff(attempt, min, max, &mut self.rng)
    }

    pub(super) fn next_cmd_id(&mut self) -> u32 {
        loop {
            self.next_cmd = self.next_cmd.wrapping_add(1);
            if self.next_cmd != 0 && !self.inflight.contains_key(&self.next_cmd) {
                return self.next_cmd;
            }
        }
    }

    pub(super) fn push_command(&mut self, cmd: &proto::Command) -> Result<(), Error> {
        let unit =
            codec::encode(self.cfg.protocol, cmd).map_err(|e| Error::InvalidData(e.to_string()))?;
        if !self.units.is_empty() && self.units_len + unit.len() + 1 > self.cfg.max_frame_size {
            self.flush();
        }
        self.units_len += unit.len() + 1;
        self.units.push(unit);
        self.stats.commands += 1;
        Ok(())
    }

    /// Sends a command that expects a reply: gives it an id, queues it and registers it in
    /// flight as `kind`, with its reply timeout at `deadline` (armed in the timer index).
    /// Returns the command id.
    pub(super) fn send_tracked(
        &mut self,
        mut cmd: proto::Command,
        kind: Inflight,
        deadline: Option<Millis>,
    ) -> Result<u32, Error> {
        let id = self.next_cmd_id();
        cmd.id = id;
        self.push_command(&cmd)?;
        self.inflight.insert(id, Pending { kind, deadline });
        if let Some(at) = deadline {
            self.arm(at, TimerKey::Inflight(id));
        }
        Ok(id)
    }

    /// Ends an input: sends the commands produced (unless held) and tidies the timer index.
    pub(super) fn finish(&mut self) {
        if !self.held {
            self.flush();
        }
        self.prune_timers();
    }

    /// Sends the commands produced so far as one frame.
    pub(super) fn flush(&mut self) {
        if self.units.is_empty() {
            return;
        }
        let units = std::mem::take(&mut self.units);
        self.units_len = 0;
        if let (Some(transport), true) = (self.transport, self.transport_open) {
            let frame = codec::join_units(self.cfg.protocol, &units);
            self.stats.frames += 1;
            self.out.push_back(Output::Send { transport, frame });
        }
    }
}
