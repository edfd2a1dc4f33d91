//! Output queueing and command framing of [`Core`]: events, call results and batched frames.

use gyre_protocol::{self as proto, codec};

use super::{CallId, CallResult, Core, Millis, Output, backoff};
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
        Ok(())
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
            self.out.push_back(Output::Send { transport, frame });
        }
    }
}
