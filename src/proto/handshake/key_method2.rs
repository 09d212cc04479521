//! The key-method-2 message exchanged inside TLS once the handshake is done (PROTOCOL.md A.3.1):
//! `u32 0 | u8 2 | [client: pre_master 48] | random1 32 | random2 32 | options | user | pass |
//! peer-info`, each string a u16 length (including the NUL) followed by the bytes and a NUL.

use zeroize::Zeroizing;

/// Errors reading a key-method-2 message (peer misbehaviour).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyMethodError {
    /// Ran out of bytes.
    #[error("key-method-2 message truncated")]
    Truncated,
    /// Not key method 2.
    #[error("unsupported key method {0} (only key-method 2 exists since OpenVPN 2.4)")]
    Method(u8),
    /// The leading u32 is not zero.
    #[error("key-method-2 message does not start with four zero bytes")]
    BadPrefix,
    /// A string is not NUL-terminated UTF-8.
    #[error("malformed string in key-method-2 message")]
    BadString,
}

/// The client's message (the secret parts are wiped on drop).
pub struct ClientKeyMessage {
    /// For the legacy PRF.
    pub pre_master: Zeroizing<[u8; 48]>,
    /// random1.
    pub random1: Zeroizing<[u8; 32]>,
    /// random2.
    pub random2: Zeroizing<[u8; 32]>,
}

impl ClientKeyMessage {
    /// Draws the randoms from `fill`.
    pub fn generate(fill: &mut dyn FnMut(&mut [u8])) -> Self {
        let mut m = Self {
            pre_master: Zeroizing::new([0; 48]),
            random1: Zeroizing::new([0; 32]),
            random2: Zeroizing::new([0; 32]),
        };
        fill(&mut m.pre_master[..]);
        fill(&mut m.random1[..]);
        fill(&mut m.random2[..]);
        m
    }

    /// Serialises the message.
    pub fn write(
        &self,
        options: &str,
        credentials: Option<(&str, &str)>,
        peer_info: &str,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(&[0, 0, 0, 0, 2]);
        out.extend_from_slice(&self.pre_master[..]);
        out.extend_from_slice(&self.random1[..]);
        out.extend_from_slice(&self.random2[..]);
        write_string(out, options);
        match credentials {
            Some((u, p)) => {
                write_string(out, u);
                write_string(out, p);
            }
            None => {
                out.extend_from_slice(&[0, 0, 0, 0]);
            }
        }
        write_string(out, peer_info);
    }
}

/// The server's message.
#[derive(Debug, Clone)]
pub struct ServerKeyMessage {
    /// random1.
    pub random1: Zeroizing<[u8; 32]>,
    /// random2.
    pub random2: Zeroizing<[u8; 32]>,
    /// The server's OCC options string.
    pub options: String,
    /// Peer info, if the server sent any.
    pub peer_info: Option<String>,
}

/// The client message as seen by a server.
#[derive(Debug, Clone)]
pub struct ReceivedClientKeyMessage {
    /// pre_master.
    pub pre_master: Zeroizing<[u8; 48]>,
    /// random1.
    pub random1: Zeroizing<[u8; 32]>,
    /// random2.
    pub random2: Zeroizing<[u8; 32]>,
    /// OCC options.
    pub options: String,
    /// Username (empty if none).
    pub username: Zeroizing<String>,
    /// Password (empty if none).
    pub password: Zeroizing<String>,
    /// Peer-info (`IV_*` lines).
    pub peer_info: String,
}

/// Serialises the server's message.
pub fn write_server_message(
    random1: &[u8; 32],
    random2: &[u8; 32],
    options: &str,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&[0, 0, 0, 0, 2]);
    out.extend_from_slice(random1);
    out.extend_from_slice(random2);
    write_string(out, options);
    out.extend_from_slice(&[0, 0, 0, 0]);
    write_string(out, "");
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        out.extend_from_slice(&[0, 0]);
        return;
    }
    let len = (s.len() + 1) as u16;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyMethodError> {
        if self.0.len() < n {
            return Err(KeyMethodError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<Zeroizing<[u8; N]>, KeyMethodError> {
        let mut out = Zeroizing::new([0u8; N]);
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn string(&mut self) -> Result<String, KeyMethodError> {
        let len = u16::from_be_bytes(
            self.take(2)?
                .try_into()
                .map_err(|_| KeyMethodError::Truncated)?,
        );
        if len == 0 {
            return Ok(String::new());
        }
        let raw = self.take(len as usize)?;
        let body = raw.strip_suffix(&[0]).unwrap_or(raw);
        let body = body.split(|&b| b == 0).next().unwrap_or(&[]);
        String::from_utf8(body.to_vec()).map_err(|_| KeyMethodError::BadString)
    }

    fn optional_string(&mut self) -> Result<Option<String>, KeyMethodError> {
        if self.0.len() < 2 {
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn header(&mut self) -> Result<(), KeyMethodError> {
        if self.take(4)? != [0, 0, 0, 0] {
            return Err(KeyMethodError::BadPrefix);
        }
        let method = self.take(1)?[0] & 0x0f;
        if method != 2 {
            return Err(KeyMethodError::Method(method));
        }
        Ok(())
    }
}

/// Parses the server's message (client side).
pub fn read_server_message(bytes: &[u8]) -> Result<ServerKeyMessage, KeyMethodError> {
    let mut r = Reader(bytes);
    r.header()?;
    let random1 = r.array::<32>()?;
    let random2 = r.array::<32>()?;
    let options = r.string()?;
    let _user = r.optional_string()?;
    let _pass = r.optional_string()?;
    let peer_info = r.optional_string()?.filter(|s| !s.is_empty());
    Ok(ServerKeyMessage {
        random1,
        random2,
        options,
        peer_info,
    })
}

/// Parses the client's message (server side).
pub fn read_client_message(bytes: &[u8]) -> Result<ReceivedClientKeyMessage, KeyMethodError> {
    let mut r = Reader(bytes);
    r.header()?;
    let pre_master = r.array::<48>()?;
    let random1 = r.array::<32>()?;
    let random2 = r.array::<32>()?;
    let options = r.string()?;
    let username = Zeroizing::new(r.optional_string()?.unwrap_or_default());
    let password = Zeroizing::new(r.optional_string()?.unwrap_or_default());
    let peer_info = r.optional_string()?.unwrap_or_default();
    Ok(ReceivedClientKeyMessage {
        pre_master,
        random1,
        random2,
        options,
        username,
        password,
        peer_info,
    })
}

/// Whether `buf` holds a complete message of the given side (TLS may deliver it in pieces).
pub fn message_len(buf: &[u8], client: bool) -> Option<usize> {
    let mut pos = 5 + if client { 48 } else { 0 } + 64;
    let strings = 4;
    for i in 0..strings {
        if buf.len() < pos + 2 {
            // The server may omit trailing strings.
            return if !client && i >= 1 && buf.len() == pos {
                Some(pos)
            } else {
                None
            };
        }
        let len = u16::from_be_bytes([buf[pos], buf[pos + 1]]) as usize;
        pos += 2 + len;
        if buf.len() < pos {
            return None;
        }
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_message_round_trip() {
        let mut n = 0u8;
        let msg = ClientKeyMessage::generate(&mut |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_add(1);
                *x = n;
            }
        });
        let mut out = Vec::new();
        msg.write(
            "V4,dev-type tun",
            Some(("user", "pass")),
            "IV_VER=1\n",
            &mut out,
        );
        assert_eq!(message_len(&out, true), Some(out.len()));
        assert_eq!(message_len(&out[..out.len() - 1], true), None);
        let got = read_client_message(&out).unwrap();
        assert_eq!(got.options, "V4,dev-type tun");
        assert_eq!(&*got.username, "user");
        assert_eq!(&*got.password, "pass");
        assert_eq!(got.peer_info, "IV_VER=1\n");
        assert_eq!(got.random2[..], msg.random2[..]);
    }

    #[test]
    fn server_message_round_trip_and_errors() {
        let mut out = Vec::new();
        write_server_message(&[1; 32], &[2; 32], "V4,tls-server", &mut out);
        assert_eq!(message_len(&out, false), Some(out.len()));
        let m = read_server_message(&out).unwrap();
        assert_eq!(m.options, "V4,tls-server");
        assert_eq!(m.random1[..], [1; 32]);
        assert_eq!(
            read_server_message(&out[..20]).unwrap_err(),
            KeyMethodError::Truncated
        );
        let mut bad = out.clone();
        bad[4] = 1;
        assert_eq!(
            read_server_message(&bad).unwrap_err(),
            KeyMethodError::Method(1)
        );
    }
}
