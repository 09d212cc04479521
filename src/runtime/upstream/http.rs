//! HTTP CONNECT through a proxy, answering a `407` with Basic or Digest.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::credentials;
use super::{Failure, dial, read_message};
use crate::config::HttpProxy;
use crate::proto::upstream::TargetAddr;
use crate::proto::upstream::digest::{DigestRequest, basic_authorization, digest_authorization};
use crate::proto::upstream::http_connect::{
    Answer, AuthMethod, ConnectRequest, choose_answer, connect_request, parse_response_head,
};
use crate::runtime::rng::system_rng;

/// How many requests one connection attempt may make (first, answer, one stale-nonce retry).
const MAX_REQUESTS: usize = 3;

/// CONNECTs to `target` through the proxy at `addr`; returns the tunnel stream and any bytes
/// the proxy sent after its response head.
pub(super) async fn connect(
    h: &HttpProxy,
    addr: SocketAddr,
    target: &TargetAddr,
    timeout: Duration,
) -> Result<(TcpStream, Vec<u8>), Failure> {
    let timeout = h.timeout.unwrap_or(timeout);
    let key = format!("{}:{}", h.host, h.port);
    let uri = target.to_string();
    let mut authorization: Option<String> = None;
    if h.method == AuthMethod::Basic {
        let c = credentials::get(&key, h.credentials.as_ref(), "http-proxy")
            .await
            .map_err(Failure::Fatal)?;
        authorization = Some(basic_authorization(&c.user, &c.pass));
    }
    let mut nc = 0u32;
    for _ in 0..MAX_REQUESTS {
        let mut stream = dial(addr, timeout).await?;
        let mut req = Vec::new();
        connect_request(
            &ConnectRequest {
                target,
                version: h.version,
                agent: h.agent.as_deref(),
                headers: &h.headers,
                authorization: authorization.as_deref(),
            },
            &mut req,
        );
        stream
            .write_all(&req)
            .await
            .map_err(|e| format!("sending CONNECT to the proxy {addr}: {e}"))?;
        let (head, rest) = read_message(&mut stream, timeout, "CONNECT", |b| {
            parse_response_head(b).map(|o| {
                o.map(|h| {
                    let n = h.len;
                    (h, n)
                })
            })
        })
        .await?;
        debug!("HTTP proxy {addr}: {}", head.status_line);
        match head.status {
            200..=299 => {
                info!("HTTP proxy {key} connected to {uri}");
                return Ok((stream, rest));
            }
            // tinyproxy answers wrong Basic credentials with a 401 instead of a 407.
            401 if authorization.is_some() => {
                return Err(Failure::Fatal(format!(
                    "HTTP proxy {key}: {} ({})",
                    crate::proto::upstream::http_connect::ChallengeError::Refused,
                    head.status_line
                )));
            }
            407 => {
                // A 407 is final: after credentials were sent, or with no usable scheme.
                let answer = choose_answer(h.method, &head.challenges(), authorization.is_some())
                    .map_err(|e| {
                    Failure::Fatal(format!("HTTP proxy {key}: {e} ({})", head.status_line))
                })?;
                let c = credentials::get(&key, h.credentials.as_ref(), "http-proxy")
                    .await
                    .map_err(Failure::Fatal)?;
                authorization = Some(match answer {
                    Answer::Basic => basic_authorization(&c.user, &c.pass),
                    Answer::Digest(ch) => {
                        nc += 1;
                        let mut r = [0u8; 16];
                        system_rng()(&mut r);
                        let cnonce = hex::encode(r);
                        digest_authorization(
                            &ch,
                            &DigestRequest {
                                method: "CONNECT",
                                uri: &uri,
                                user: &c.user,
                                pass: &c.pass,
                                cnonce: &cnonce,
                                nc,
                            },
                        )
                        .map_err(|e| Failure::Fatal(format!("HTTP proxy {key}: {e}")))?
                    }
                });
                // The proxy may close after a 407: the answer goes on a new connection.
                drop(stream);
            }
            _ => {
                return Err(Failure::Retry(format!(
                    "the HTTP proxy {key} refused to connect to {uri}: {}",
                    head.status_line
                )));
            }
        }
    }
    Err(Failure::Fatal(format!(
        "the HTTP proxy {key} kept asking for authentication (the credentials were refused)"
    )))
}
