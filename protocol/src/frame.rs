//! Finding where one RESP2/RESP3 reply ends in a buffer of replies, without decoding it: what
//! a node relaying requests to another needs to hand each reply back to its client; and
//! writing a request, for the node's own connections to other nodes.

/// A command as a client sends it: an array of bulk strings.
pub fn request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Why a buffer cannot hold a reply.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// The position after the `\r\n` ending the line that starts at `pos`.
fn line_end(buf: &[u8], pos: usize) -> Option<usize> {
    buf.get(pos..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| pos + i + 2)
}

fn number(line: &[u8]) -> Result<i64, Malformed> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed)
}

/// The length of the first complete reply in `buf`: `Ok(None)` while it is incomplete.
/// Aggregates are walked with a counter, not recursion, so nesting depth costs nothing.
pub fn reply_length(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    let mut pos = 0;
    // Values still to read before the reply is complete.
    let mut wanted: u64 = 1;
    while wanted > 0 {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(end) = line_end(buf, pos) else {
            return Ok(None);
        };
        let header = &buf[pos + 1..end - 2];
        pos = end;
        wanted -= 1;
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'!' | b'=' => {
                let len = number(header)?;
                if len >= 0 {
                    let body_end = usize::try_from(len)
                        .ok()
                        .and_then(|len| pos.checked_add(len)?.checked_add(2))
                        .ok_or(Malformed)?;
                    if buf.len() < body_end {
                        return Ok(None);
                    }
                    if &buf[body_end - 2..body_end] != b"\r\n" {
                        return Err(Malformed);
                    }
                    pos = body_end;
                } else if len != -1 {
                    return Err(Malformed);
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let len = number(header)?;
                if len < -1 {
                    return Err(Malformed);
                }
                let len = len.max(0) as u64;
                let items = if matches!(kind, b'%' | b'|') {
                    len.saturating_mul(2)
                } else {
                    len
                };
                wanted = wanted.saturating_add(items);
                // An attribute annotates the value after it, which is still to come.
                if kind == b'|' {
                    wanted = wanted.saturating_add(1);
                }
            }
            _ => return Err(Malformed),
        }
    }
    Ok(Some(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_an_array_of_bulk_strings() {
        assert_eq!(
            request(&["AUTH", "pass word", ""]),
            b"*3\r\n$4\r\nAUTH\r\n$9\r\npass word\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn finds_the_end_of_each_kind_of_reply() {
        let replies: [&[u8]; 12] = [
            b"+OK\r\n",
            b"-ERR no\r\n",
            b":42\r\n",
            b"$3\r\nfoo\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"$4\r\na\r\nb\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n",
            b">2\r\n$1\r\nm\r\n_\r\n",
            b"|1\r\n+a\r\n+b\r\n:7\r\n",
            b"=8\r\ntxt:abcd\r\n",
        ];
        for reply in replies {
            let mut buf = reply.to_vec();
            buf.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(reply_length(&buf), Ok(Some(reply.len())), "{reply:?}");
            for cut in 0..reply.len() {
                assert_eq!(
                    reply_length(&reply[..cut]),
                    Ok(None),
                    "{reply:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn rejects_what_is_not_a_reply() {
        for bad in [
            &b"?x\r\n"[..],
            b"$x\r\n",
            b"*-2\r\n",
            b"$1\r\nab\r\n",
            b"$-3\r\n",
        ] {
            assert_eq!(reply_length(bad), Err(Malformed), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_and_random_bytes_never_panic() {
        let deep = b"*1\r\n".repeat(100_000);
        assert_eq!(reply_length(&deep), Ok(None));
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let alphabet = b"*$:+-%~|\r\n0123-?";
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            if let Ok(Some(n)) = reply_length(&buf) {
                assert!(n <= buf.len());
            }
        }
    }
}
