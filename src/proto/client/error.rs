//! Why a client session ended, and whether reconnecting makes sense.

use std::time::Duration;

use crate::proto::handshake::key_method2::KeyMethodError;
use crate::proto::handshake::push::PushError;
use crate::proto::tls::TlsError;

/// Why a session ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server never answered the first packet.
    #[error(
        "no answer from the server within {0:?}: check the address, port and protocol (udp/tcp), a firewall on the way, and that the 'tls-auth'/'tls-crypt' key matches the server's"
    )]
    NoResponse(Duration),
    /// The handshake did not finish within `hand-window`.
    #[error("the TLS handshake did not finish within hand-window ({0:?}); {1}")]
    HandshakeTimeout(Duration, &'static str),
    /// The server's certificate or TLS settings were refused.
    #[error("TLS handshake with the server failed: {0}")]
    Tls(String),
    /// The server sent a malformed key-method-2 message.
    #[error("the server's key exchange message is malformed: {0}")]
    KeyMethod(#[from] KeyMethodError),
    /// AUTH_FAILED from the server.
    #[error("the server refused the credentials (AUTH_FAILED){}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    AuthFailed(String),
    /// `AUTH_FAILED,TEMP[flags]:message`: a temporary refusal; try again after `backoff` (the
    /// server's `backoff N` flag) or the usual reconnect pause.
    #[error("the server refused the session for now (AUTH_FAILED,TEMP){}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    AuthFailedTemp {
        /// The server's message.
        message: String,
        /// How long to wait (`backoff N`).
        backoff: Option<Duration>,
        /// `advance addr` / `advance remote`: try the next remote.
        advance: bool,
    },
    /// `AUTH_FAILED,CRV1:flags:state:base64(user):text`: the server asks a question (dynamic
    /// challenge); answer it and reconnect with user `username` and password
    /// `CRV1::state::response`.
    #[error("the server asks: {text}")]
    Challenge {
        /// `E`: the answer may be echoed.
        echo: bool,
        /// The server's state id, returned with the answer.
        state: String,
        /// The user name to answer with.
        username: String,
        /// The question.
        text: String,
    },
    /// The auth token expired (`AUTH_FAILED,SESSION:`): reconnect with the real credentials.
    #[error("the session token expired ({0}); reconnecting with the original credentials")]
    TokenExpired(String),
    /// A push the client cannot accept.
    #[error("cannot accept the server's configuration: {0}")]
    Push(#[from] PushError),
    /// No usable data cipher.
    #[error("{0}")]
    NoCipher(String),
    /// Nothing received for `ping-restart` seconds.
    #[error("no packets from the server for {0:?} (ping-restart): the connection is dead")]
    PingRestart(Duration),
    /// `ping-exit` fired.
    #[error("no packets from the server for {0:?} (ping-exit)")]
    PingExit(Duration),
    /// RESTART or EXIT from the server.
    #[error("the server asked to reconnect{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    ServerRestart(String),
    /// HALT from the server.
    #[error("the server told this client to stop{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    ServerHalt(String),
    /// The local side closed the session.
    #[error("closed")]
    LocallyClosed,
    /// A fatal protocol error (peer misbehaviour).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl From<TlsError> for ClientError {
    fn from(e: TlsError) -> Self {
        Self::Tls(e.to_string())
    }
}

impl ClientError {
    /// Whether a new session should be attempted (OpenVPN's SIGUSR1 vs SIGTERM).
    pub fn should_reconnect(&self) -> bool {
        !matches!(
            self,
            Self::AuthFailed(_) | Self::ServerHalt(_) | Self::LocallyClosed | Self::PingExit(_)
        )
    }
}
