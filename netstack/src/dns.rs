//! DNS through the tunnel.
//!
//! The message side is sans-IO ([`encode_query`], [`decode_answer`], over hickory-proto); the
//! resolver ([`Stack::resolve`]) asks the pushed servers over a stack UDP socket, falls back to
//! TCP for a truncated answer and caches results for their TTL.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::stack::Stack;

/// How long one server gets to answer over UDP, per try.
const UDP_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds over the server list.
const ROUNDS: usize = 2;
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_TTL: u32 = 5;
const MAX_TTL: u32 = 3600;
/// How long "no such name" / "no address" is remembered.
const NEGATIVE_TTL: u32 = 10;
const CACHE_ENTRIES: usize = 4096;
/// EDNS payload size we announce (the DNS flag day value: fits the tunnel without fragments).
const EDNS_PAYLOAD: u16 = 1232;

/// Which address record to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryType {
    A,
    Aaaa,
}

impl QueryType {
    fn record_type(self) -> RecordType {
        match self {
            Self::A => RecordType::A,
            Self::Aaaa => RecordType::AAAA,
        }
    }
}

/// Why an answer was not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("malformed DNS message")]
    Malformed,
    #[error("DNS message is not the answer to our query")]
    Unrelated,
    #[error("DNS server answered {0}")]
    Server(String),
    #[error("invalid domain name {0:?}")]
    BadName(String),
}

/// An answer to one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Addresses of the asked type, in answer order (CNAME chains are followed implicitly: every
    /// address record in the answer section counts).
    pub addrs: Vec<IpAddr>,
    /// Smallest TTL among those records, 0 when there are none.
    pub ttl: u32,
    /// The TC bit: ask again over TCP.
    pub truncated: bool,
    /// NXDOMAIN.
    pub no_such_name: bool,
}

/// A recursive query for `name`'s `qtype` records with message id `id`.
pub fn encode_query(id: u16, name: &str, qtype: QueryType) -> Result<Vec<u8>, DnsError> {
    let mut fqdn = Name::from_utf8(name).map_err(|_| DnsError::BadName(name.to_owned()))?;
    fqdn.set_fqdn(true);
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(fqdn, qtype.record_type()));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    msg.set_edns(edns);
    msg.to_vec().map_err(|_| DnsError::BadName(name.to_owned()))
}

/// Parses the answer to query `id` for `qtype`. Errors for anything that is not that answer,
/// and for server failures (SERVFAIL, REFUSED, ...), so the caller tries another server.
pub fn decode_answer(id: u16, qtype: QueryType, bytes: &[u8]) -> Result<Answer, DnsError> {
    let msg = Message::from_vec(bytes).map_err(|_| DnsError::Malformed)?;
    if msg.id() != id || msg.message_type() != MessageType::Response {
        return Err(DnsError::Unrelated);
    }
    if msg
        .queries()
        .first()
        .is_some_and(|q| q.query_type() != qtype.record_type())
    {
        return Err(DnsError::Unrelated);
    }
    let truncated = msg.truncated();
    let no_such_name = match msg.response_code() {
        ResponseCode::NoError => false,
        ResponseCode::NXDomain => true,
        other if truncated => {
            return Ok(Answer {
                addrs: Vec::new(),
                ttl: 0,
                truncated,
                no_such_name: other == ResponseCode::NXDomain,
            });
        }
        other => return Err(DnsError::Server(other.to_string())),
    };
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for r in msg.answers() {
        let ip = match (qtype, r.data()) {
            (QueryType::A, RData::A(a)) => IpAddr::V4(a.0),
            (QueryType::Aaaa, RData::AAAA(a)) => IpAddr::V6(a.0),
            _ => continue,
        };
        ttl = ttl.min(r.ttl());
        addrs.push(ip);
    }
    if addrs.is_empty() {
        ttl = 0;
    }
    Ok(Answer {
        addrs,
        ttl,
        truncated,
        no_such_name,
    })
}

/// Lower-cases, strips one trailing dot, checks length. IP literals (also `[v6]`) pass through.
pub(crate) fn normalize(name: &str) -> Result<String, DnsError> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() || n.len() > 253 || n.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(DnsError::BadName(name.to_owned()));
    }
    Ok(n.to_ascii_lowercase())
}

/// Parses an IP literal the way a proxy target may carry it.
pub(crate) fn ip_literal(name: &str) -> Option<IpAddr> {
    let n = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    n.parse().ok()
}

/// TTL cache of resolved names (also negative results, as an empty list).
#[derive(Default)]
pub(crate) struct DnsCache {
    map: Mutex<HashMap<String, (Vec<IpAddr>, Instant)>>,
}

impl DnsCache {
    fn get(&self, name: &str, now: Instant) -> Option<Vec<IpAddr>> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(name)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, name: String, addrs: Vec<IpAddr>, ttl: u32, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= CACHE_ENTRIES {
            map.retain(|_, (_, exp)| *exp > now);
            if map.len() >= CACHE_ENTRIES {
                map.clear();
            }
        }
        map.insert(name, (addrs, now + Duration::from_secs(u64::from(ttl))));
    }

    pub(crate) fn clear(&self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no address found"))
}

fn dns_io(e: DnsError) -> io::Error {
    match e {
        DnsError::BadName(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
        _ => io::Error::other(e),
    }
}

impl Stack {
    /// Resolves `name` to addresses through the tunnel (A when the tunnel has IPv4, AAAA when it
    /// has IPv6; IPv4 first), via the configured DNS servers, with a TTL cache. IP literals are
    /// returned as they are. `NotFound` when the name has no address.
    pub async fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        if let Some(ip) = ip_literal(name) {
            return Ok(vec![ip]);
        }
        let name = normalize(name).map_err(dns_io)?;
        if let Some(hit) = self.shared.dns_cache.get(&name, Instant::now()) {
            return if hit.is_empty() {
                Err(not_found(&name))
            } else {
                Ok(hit)
            };
        }
        let cfg = self.config();
        let mut qtypes = Vec::new();
        if cfg.ipv4.is_some() {
            qtypes.push(QueryType::A);
        }
        if cfg.ipv6.is_some() {
            qtypes.push(QueryType::Aaaa);
        }
        if qtypes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                "the tunnel has no address",
            ));
        }
        let servers: Vec<SocketAddr> = cfg
            .dns_servers
            .iter()
            .copied()
            .filter(|s| self.can_reach(s.ip()))
            .collect();
        if servers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name}: no DNS server pushed"),
            ));
        }
        let mut last = io::Error::new(io::ErrorKind::TimedOut, format!("{name}: no DNS answer"));
        for round in 1..=ROUNDS {
            for server in &servers {
                match self
                    .query_server(
                        *server,
                        &name,
                        &qtypes,
                        UDP_TIMEOUT * u32::try_from(round).unwrap_or(1),
                    )
                    .await
                {
                    Ok((addrs, ttl)) => {
                        let ttl = if addrs.is_empty() {
                            NEGATIVE_TTL
                        } else {
                            ttl.clamp(MIN_TTL, MAX_TTL)
                        };
                        self.shared
                            .dns_cache
                            .put(name.clone(), addrs.clone(), ttl, Instant::now());
                        return if addrs.is_empty() {
                            Err(not_found(&name))
                        } else {
                            Ok(addrs)
                        };
                    }
                    Err(e) => {
                        tracing::debug!(%server, %name, error = %e, "DNS query failed");
                        last = e;
                    }
                }
            }
        }
        Err(last)
    }

    /// Asks one server for all `qtypes` at once over UDP.
    async fn query_server(
        &self,
        server: SocketAddr,
        name: &str,
        qtypes: &[QueryType],
        timeout: Duration,
    ) -> io::Result<(Vec<IpAddr>, u32)> {
        let sock = self.udp_bind_small()?;
        let base = u16::try_from(crate::stack::random_seed() & 0xffff).unwrap_or(1);
        let mut pending: Vec<(u16, QueryType, Option<Answer>)> = Vec::new();
        for (i, q) in qtypes.iter().enumerate() {
            let id = base.wrapping_add(u16::try_from(i).unwrap_or(0));
            sock.send_to(&encode_query(id, name, *q).map_err(dns_io)?, server)
                .await?;
            pending.push((id, *q, None));
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        while pending.iter().any(|p| p.2.is_none()) {
            let (n, from) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("DNS server {server} did not answer"),
                    )
                })??;
            if from != server {
                continue;
            }
            for (id, q, slot) in pending.iter_mut().filter(|p| p.2.is_none()) {
                match decode_answer(*id, *q, &buf[..n]) {
                    Ok(a) if a.truncated => {
                        *slot = Some(self.query_tcp(server, name, *id, *q).await?);
                    }
                    Ok(a) => *slot = Some(a),
                    Err(DnsError::Unrelated | DnsError::Malformed) => continue,
                    Err(e) => return Err(dns_io(e)),
                }
                break;
            }
        }
        let mut addrs = Vec::new();
        let mut ttl = u32::MAX;
        for (_, _, a) in pending.into_iter() {
            let a = a.unwrap_or(Answer {
                addrs: Vec::new(),
                ttl: 0,
                truncated: false,
                no_such_name: false,
            });
            if !a.addrs.is_empty() {
                ttl = ttl.min(a.ttl);
            }
            addrs.extend(a.addrs);
        }
        Ok((addrs, ttl))
    }

    /// The same query over TCP (RFC 7766: two-byte length prefix).
    async fn query_tcp(
        &self,
        server: SocketAddr,
        name: &str,
        id: u16,
        q: QueryType,
    ) -> io::Result<Answer> {
        let work = async {
            let mut s = self.tcp_connect(server).await?;
            let msg = encode_query(id, name, q).map_err(dns_io)?;
            let len =
                u16::try_from(msg.len()).map_err(|_| io::Error::other("DNS query too long"))?;
            let mut framed = Vec::with_capacity(msg.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&msg);
            s.write_all(&framed).await?;
            let len = s.read_u16().await?;
            let mut buf = vec![0u8; usize::from(len)];
            s.read_exact(&mut buf).await?;
            let _ = s.shutdown().await;
            decode_answer(id, q, &buf).map_err(dns_io)
        };
        tokio::time::timeout(TCP_TIMEOUT, work).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("DNS over TCP to {server} timed out"),
            )
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn response(
        id: u16,
        qtype: RecordType,
        rcode: ResponseCode,
        records: Vec<Record>,
        tc: bool,
    ) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query);
        m.set_response_code(rcode).set_truncated(tc);
        m.add_query(Query::query(
            Name::from_ascii("example.test.").unwrap(),
            qtype,
        ));
        for r in records {
            m.add_answer(r);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn query_has_id_question_and_rd() {
        let bytes = encode_query(0x1234, "Example.TEST", QueryType::Aaaa).unwrap();
        assert_eq!(&bytes[..2], &[0x12, 0x34]);
        assert_eq!(bytes[2] & 0x81, 0x01, "query with RD set");
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.queries()[0].query_type(), RecordType::AAAA);
        assert_eq!(
            m.queries()[0].name().to_ascii().to_lowercase(),
            "example.test."
        );
        assert_eq!(m.extensions().as_ref().unwrap().max_payload(), EDNS_PAYLOAD);
    }

    #[test]
    fn answer_with_cname_chain_and_min_ttl() {
        let n = Name::from_ascii("example.test.").unwrap();
        let t = Name::from_ascii("target.test.").unwrap();
        let recs = vec![
            Record::from_rdata(n, 300, RData::CNAME(CNAME(t.clone()))),
            Record::from_rdata(t.clone(), 60, RData::A(A(Ipv4Addr::new(198, 18, 0, 7)))),
            Record::from_rdata(t, 120, RData::A(A(Ipv4Addr::new(198, 18, 0, 8)))),
        ];
        let a = decode_answer(
            7,
            QueryType::A,
            &response(7, RecordType::A, ResponseCode::NoError, recs, false),
        )
        .unwrap();
        assert_eq!(
            a.addrs,
            vec![
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 7)),
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 8))
            ]
        );
        assert_eq!(a.ttl, 60);
        assert!(!a.truncated && !a.no_such_name);
    }

    #[test]
    fn aaaa_answer_ignores_other_types() {
        let n = Name::from_ascii("example.test.").unwrap();
        let recs = vec![
            Record::from_rdata(n.clone(), 30, RData::A(A(Ipv4Addr::new(1, 2, 3, 4)))),
            Record::from_rdata(n, 40, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
        ];
        let a = decode_answer(
            9,
            QueryType::Aaaa,
            &response(9, RecordType::AAAA, ResponseCode::NoError, recs, false),
        )
        .unwrap();
        assert_eq!(a.addrs, vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert_eq!(a.ttl, 40);
    }

    #[test]
    fn wrong_id_type_or_garbage_is_unrelated_or_malformed() {
        let r = response(1, RecordType::A, ResponseCode::NoError, vec![], false);
        assert_eq!(decode_answer(2, QueryType::A, &r), Err(DnsError::Unrelated));
        assert_eq!(
            decode_answer(1, QueryType::Aaaa, &r),
            Err(DnsError::Unrelated)
        );
        assert_eq!(
            decode_answer(1, QueryType::A, &[1, 2, 3]),
            Err(DnsError::Malformed)
        );
        assert_eq!(
            decode_answer(1, QueryType::A, &[]),
            Err(DnsError::Malformed)
        );
        // Our own query is not an answer.
        let q = encode_query(1, "example.test", QueryType::A).unwrap();
        assert_eq!(decode_answer(1, QueryType::A, &q), Err(DnsError::Unrelated));
    }

    #[test]
    fn nxdomain_servfail_truncated() {
        let r = response(3, RecordType::A, ResponseCode::NXDomain, vec![], false);
        let a = decode_answer(3, QueryType::A, &r).unwrap();
        assert!(a.no_such_name && a.addrs.is_empty());
        let r = response(3, RecordType::A, ResponseCode::ServFail, vec![], false);
        assert!(matches!(
            decode_answer(3, QueryType::A, &r),
            Err(DnsError::Server(_))
        ));
        let r = response(3, RecordType::A, ResponseCode::NoError, vec![], true);
        assert!(decode_answer(3, QueryType::A, &r).unwrap().truncated);
    }

    #[test]
    fn names_normalized() {
        assert_eq!(normalize("WWW.Example.COM.").unwrap(), "www.example.com");
        assert!(normalize("").is_err());
        assert!(normalize("a..b").is_err());
        assert!(normalize(&"a".repeat(64)).is_err());
        assert_eq!(
            ip_literal("[2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            ip_literal("198.18.0.1"),
            Some("198.18.0.1".parse().unwrap())
        );
        assert_eq!(ip_literal("example.com"), None);
    }
}
