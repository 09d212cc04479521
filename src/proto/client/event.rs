//! What the client state machine tells its shell.

use crate::proto::handshake::push::PushedOptions;

/// Events, in the order they happened; drain with [`super::Client::poll_event`].
#[derive(Debug, Clone)]
pub enum Event {
    /// The first key is up and the push was applied: configure the device and start routing.
    Connected(Box<PushedOptions>),
    /// A renegotiation finished: new data keys on `key_id`.
    Renegotiated {
        /// The new key id.
        key_id: u8,
    },
    /// A TLS handshake finished (informational: protocol and suite).
    TlsEstablished(String),
    /// `INFO` / `INFO_PRE` / `AUTH_PENDING` text from the server.
    Info(String),
    /// The server wants the user to open a web page to authenticate (`WEB_AUTH`/`OPEN_URL` during
    /// `AUTH_PENDING`); the session stays pending until the server decides.
    OpenUrl(String),
    /// The server asks a question during `AUTH_PENDING` (`CR_TEXT`): answer with
    /// [`super::Client::send_cr_response`].
    CrText {
        /// Whether the answer may be shown while typed.
        echo: bool,
        /// The question.
        text: String,
    },
    /// Something worth a warning (ignored pushed option, dropped packet burst, ...).
    Warning(String),
    /// The session ended; see [`super::ClientError`] for why and whether to reconnect.
    Closed(super::ClientError),
}
