//! Feeds log events into the management interface's history ([`LogRing`]), so `log on` /
//! `log all` show what the server logs.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use super::management::LogRing;

/// A tracing layer writing every event's message into a [`LogRing`].
pub struct RingLayer {
    ring: LogRing,
}

impl RingLayer {
    /// A layer feeding `ring`.
    pub fn new(ring: LogRing) -> Self {
        Self { ring }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        self.ring.push(
            crate::runtime::clock::wall(),
            LogRing::flag_for(event.metadata().level()),
            m.0,
        );
    }
}
