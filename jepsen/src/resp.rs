//! A minimal blocking RESP2 client, enough for the test's clients and the runner's probes.
//!
//! Test clients need exact control over what counts as sent: a request that could not be
//! connected or written was never seen by the server, while anything after the bytes left
//! may have taken effect. [`Connection::call`] reports the two apart.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest bulk string or array the client accepts; replies in these tests are small, so
/// anything larger is a broken stream.
const MAX_LENGTH: usize = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Why a call has no reply.
#[derive(Debug)]
pub enum CallError {
    /// Nothing reached the server: it cannot have run the request.
    NotSent(io::Error),
    /// The request may have reached the server; its effect is unknown.
    NoReply(io::Error),
}

impl CallError {
    pub fn describe(&self) -> String {
        match self {
            CallError::NotSent(error) => format!("not sent: {error}"),
            CallError::NoReply(error) => format!("no reply: {error}"),
        }
    }
}

pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects with `timeout` for the connection and for each later read and write.
    pub fn open(address: SocketAddr, timeout: Duration) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            reader: BufReader::new(stream),
        })
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply, CallError> {
        let request = encode(args);
        // A short write may have delivered a prefix the server parses later only if more
        // bytes follow, and none will: the connection is dropped after any error.
        self.reader
            .get_mut()
            .write_all(&request)
            .map_err(CallError::NotSent)?;
        read_reply(&mut self.reader).map_err(CallError::NoReply)
    }
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn read_line<R: BufRead>(reader: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if !line.ends_with(b"\r\n") {
        return Err(invalid("a reply line without CRLF"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| invalid("a reply line that is not UTF-8"))
}

fn length(text: &str) -> io::Result<Option<usize>> {
    let length: i64 = text
        .parse()
        .map_err(|_| invalid(format!("bad length {text:?}")))?;
    match length {
        -1 => Ok(None),
        0.. if length as usize <= MAX_LENGTH => Ok(Some(length as usize)),
        _ => Err(invalid(format!("bad length {length}"))),
    }
}

pub fn read_reply<R: BufRead>(reader: &mut R) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Integer(
            rest.parse()
                .map_err(|_| invalid(format!("bad integer {rest:?}")))?,
        ),
        "$" => match length(rest)? {
            None => Reply::Bulk(None),
            Some(length) => {
                let mut data = vec![0; length + 2];
                reader.read_exact(&mut data)?;
                if !data.ends_with(b"\r\n") {
                    return Err(invalid("a bulk string without CRLF"));
                }
                data.truncate(length);
                Reply::Bulk(Some(data))
            }
        },
        "*" => match length(rest)? {
            None => Reply::Array(None),
            Some(length) => {
                let mut items = Vec::with_capacity(length.min(1024));
                for _ in 0..length {
                    items.push(read_reply(reader)?);
                }
                Reply::Array(Some(items))
            }
        },
        _ => return Err(invalid(format!("unknown reply type in {line:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut &bytes[..])
    }

    #[test]
    fn replies_of_every_type_parse() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            parse(b"-MOVED 1 a:1\r\n").unwrap(),
            Reply::Error("MOVED 1 a:1".into())
        );
        assert_eq!(parse(b":-7\r\n").unwrap(), Reply::Integer(-7));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"$4\r\na\r\nb\r\n").unwrap(),
            Reply::Bulk(Some(b"a\r\nb".to_vec()))
        );
        assert_eq!(
            parse(b"*2\r\n:1\r\n*-1\r\n").unwrap(),
            Reply::Array(Some(vec![Reply::Integer(1), Reply::Array(None)]))
        );
    }

    #[test]
    fn broken_replies_are_errors_not_panics() {
        for bytes in [
            &b""[..],
            b"+OK",
            b"?x\r\n",
            b":x\r\n",
            b"$5\r\nab\r\n",
            b"$2\r\nabcd",
            b"$-2\r\n",
            b"$99999999999\r\n",
            b"*2\r\n:1\r\n",
            b"\r\n",
        ] {
            assert!(parse(bytes).is_err(), "{bytes:?} parsed");
        }
    }

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&[b"SET", b"k", b""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
    }
}
