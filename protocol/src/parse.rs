//! Incremental RESP request parser.
//!
//! Requests are arrays of bulk strings (what every client library sends) or inline commands
//! (what a person types over telnet). Parsing never copies a multibulk argument: it records
//! where each argument lies in the caller's buffer. Inline arguments may contain escapes, so
//! they are unescaped into a scratch buffer owned by the parser.

use std::fmt;
use std::ops::Range;

/// Longest inline request, and longest `*N` / `$N` header line, that Redis accepts.
pub const MAX_INLINE_LEN: usize = 64 * 1024;

/// Default for `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// What a client that has not authenticated yet may send, as in Redis: enough for AUTH and
/// HELLO, too little to make the server buffer much for a stranger.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;
const UNAUTHENTICATED_MAX_BULK_LEN: usize = 16 * 1024;

/// A request that cannot be parsed; the connection is closed after the error is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    ExpectedBulk(u8),
    TooBigInline,
    TooBigMultibulkCount,
    TooBigBulkCount,
    UnbalancedQuotes,
    UnauthenticatedMultibulkLength,
    UnauthenticatedBulkLength,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ERR Protocol error: ")?;
        match self {
            ParseError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ParseError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ParseError::ExpectedBulk(got) => write!(f, "expected '$', got '{}'", *got as char),
            ParseError::TooBigInline => f.write_str("too big inline request"),
            ParseError::TooBigMultibulkCount => f.write_str("too big mbulk count string"),
            ParseError::TooBigBulkCount => f.write_str("too big bulk count string"),
            ParseError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            ParseError::UnauthenticatedMultibulkLength => {
                f.write_str("unauthenticated multibulk length")
            }
            ParseError::UnauthenticatedBulkLength => f.write_str("unauthenticated bulk length"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one request at a time from the front of a buffer the caller owns.
#[derive(Debug)]
pub struct RequestParser {
    spans: Vec<Range<usize>>,
    scratch: Vec<u8>,
    inline: bool,
    /// The input length below which another attempt cannot make progress.
    need: usize,
    max_bulk_len: usize,
    /// The client must authenticate first: its requests are held to Redis's small limits.
    unauthenticated: bool,
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BULK_LEN)
    }
}

impl RequestParser {
    pub fn new(max_bulk_len: usize) -> Self {
        RequestParser {
            spans: Vec::with_capacity(8),
            scratch: Vec::new(),
            inline: false,
            need: 0,
            max_bulk_len,
            unauthenticated: false,
        }
    }

    /// Forgets what the last incomplete parse learned, for a caller that will parse from a
    /// different position next.
    pub fn reset(&mut self) {
        self.need = 0;
    }

    pub fn set_max_bulk_len(&mut self, max_bulk_len: usize) {
        self.max_bulk_len = max_bulk_len;
    }

    /// Holds requests to what a client that has not authenticated may send (or stops).
    pub fn set_unauthenticated(&mut self, unauthenticated: bool) {
        self.unauthenticated = unauthenticated;
    }

    /// Parses the request at the start of `input`. Returns the number of bytes it occupies, or
    /// `None` when `input` holds only part of it. A complete request may have no arguments
    /// (an empty line, `*0`), which the caller skips.
    pub fn parse(&mut self, input: &[u8]) -> Result<Option<usize>, ParseError> {
        if input.is_empty() || input.len() < self.need {
            return Ok(None);
        }
        self.spans.clear();
        let result = if input[0] == b'*' {
            self.inline = false;
            self.parse_multibulk(input)
        } else {
            self.inline = true;
            self.parse_inline(input)
        };
        match result {
            Ok(Some(consumed)) => {
                self.need = 0;
                Ok(Some(consumed))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.need = 0;
                Err(e)
            }
        }
    }

    /// The arguments of the request last parsed from `input`.
    pub fn args<'a>(&'a self, input: &'a [u8]) -> Args<'a> {
        let base = if self.inline {
            &self.scratch[..]
        } else {
            input
        };
        Args {
            base,
            spans: &self.spans,
        }
    }

    /// Bytes still missing before the request at the front of the buffer can complete, when
    /// known: lets the caller grow its buffer once for a large argument.
    pub fn missing(&self, buffered: usize) -> usize {
        self.need.saturating_sub(buffered)
    }

    fn parse_multibulk(&mut self, input: &[u8]) -> Result<Option<usize>, ParseError> {
        let Some((count, mut pos)) = header_line(input, 1, ParseError::TooBigMultibulkCount)?
        else {
            self.need = input.len() + 1;
            return Ok(None);
        };
        let count = parse_int(count).ok_or(ParseError::InvalidMultibulkLength)?;
        if count > i32::MAX as i64 {
            return Err(ParseError::InvalidMultibulkLength);
        }
        if self.unauthenticated && count > UNAUTHENTICATED_MAX_ARGS {
            return Err(ParseError::UnauthenticatedMultibulkLength);
        }
        for _ in 0..count.max(0) {
            if pos >= input.len() {
                self.need = pos + 1;
                return Ok(None);
            }
            if input[pos] != b'$' {
                return Err(ParseError::ExpectedBulk(input[pos]));
            }
            let Some((len, data)) = header_line(input, pos + 1, ParseError::TooBigBulkCount)?
            else {
                self.need = input.len() + 1;
                return Ok(None);
            };
            let len = parse_int(len)
                .filter(|&n| n >= 0 && n as u64 <= self.max_bulk_len as u64)
                .ok_or(ParseError::InvalidBulkLength)? as usize;
            if self.unauthenticated && len > UNAUTHENTICATED_MAX_BULK_LEN {
                return Err(ParseError::UnauthenticatedBulkLength);
            }
            let end = data + len + 2;
            if input.len() < end {
                self.need = end;
                return Ok(None);
            }
            self.spans.push(data..data + len);
            pos = end;
        }
        Ok(Some(pos))
    }

    fn parse_inline(&mut self, input: &[u8]) -> Result<Option<usize>, ParseError> {
        let Some(newline) = input.iter().position(|&b| b == b'\n') else {
            if input.len() > MAX_INLINE_LEN {
                return Err(ParseError::TooBigInline);
            }
            self.need = input.len() + 1;
            return Ok(None);
        };
        let mut line = &input[..newline];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        self.scratch.clear();
        split_inline(line, &mut self.scratch, &mut self.spans)?;
        Ok(Some(newline + 1))
    }
}

/// Finds the `\r\n`-terminated line starting at `start`; returns its text and the position
/// after the terminator. A line that cannot end within `MAX_INLINE_LEN` is an error.
fn header_line(
    input: &[u8],
    start: usize,
    too_big: ParseError,
) -> Result<Option<(&[u8], usize)>, ParseError> {
    match input[start..].iter().position(|&b| b == b'\r') {
        Some(len) if start + len + 1 < input.len() => {
            Ok(Some((&input[start..start + len], start + len + 2)))
        }
        Some(_) => Ok(None),
        None if input.len() - start > MAX_INLINE_LEN => Err(too_big),
        None => Ok(None),
    }
}

/// Strict decimal integer as Redis's `string2ll` reads it: optional `-`, no leading zeros,
/// no spaces, no `+`, within `i64`.
pub fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty()
        || digits.len() > 19
        || (digits[0] == b'0' && (digits.len() > 1 || negative))
    {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            None
        } else {
            Some((value as i64).wrapping_neg())
        }
    } else {
        i64::try_from(value).ok()
    }
}

/// Splits an inline request into arguments the way `redis-cli` and Redis do: whitespace
/// separates, `"..."` understands `\n \r \t \b \a \\ \" \xHH`, `'...'` understands `\'`, and
/// a closing quote must be followed by whitespace or the end of the line.
fn split_inline(
    line: &[u8],
    out: &mut Vec<u8>,
    spans: &mut Vec<Range<usize>>,
) -> Result<(), ParseError> {
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let Some(&c) = line.get(i) else {
                    return Err(ParseError::UnbalancedQuotes);
                };
                if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        out.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    out.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else if in_single {
                let Some(&c) = line.get(i) else {
                    return Err(ParseError::UnbalancedQuotes);
                };
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(&c) => out.push(c),
                }
                i += 1;
            }
        }
        spans.push(start..out.len());
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The arguments of one request: the command name first.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    base: &'a [u8],
    spans: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i`; panics when out of range, like slice indexing (arity is checked first).
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.base[self.spans[i].clone()]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + '_ {
        self.spans.iter().map(|s| &self.base[s.clone()])
    }

    /// The arguments from index `from` on.
    pub fn tail(&self, from: usize) -> Args<'a> {
        Args {
            base: self.base,
            spans: &self.spans[from.min(self.spans.len())..],
        }
    }

    /// The arguments from index `from` up to (not including) `to`.
    pub fn range(&self, from: usize, to: usize) -> Args<'a> {
        let to = to.min(self.spans.len());
        Args {
            base: self.base,
            spans: &self.spans[from.min(to)..to],
        }
    }

    /// Builds an argument list over `base` from spans the caller recorded.
    pub fn from_spans(base: &'a [u8], spans: &'a [Range<usize>]) -> Self {
        Args { base, spans }
    }
}

impl fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
        let mut parser = RequestParser::default();
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(n) = parser.parse(&input[pos..])? {
            out.push(
                parser
                    .args(&input[pos..])
                    .iter()
                    .map(<[u8]>::to_vec)
                    .collect(),
            );
            pos += n;
        }
        assert_eq!(pos, input.len(), "trailing bytes left unparsed");
        Ok(out)
    }

    fn words(ws: &[&str]) -> Vec<Vec<u8>> {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn parses_multibulk_requests() {
        let got = parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            got.unwrap(),
            vec![words(&["SET", "k", "hello"]), words(&["PING"])]
        );
    }

    #[test]
    fn binary_arguments_keep_every_byte() {
        let got = parse_all(b"*2\r\n$3\r\nGET\r\n$4\r\na\r\n\0\r\n").unwrap();
        assert_eq!(got[0][1], b"a\r\n\0");
    }

    #[test]
    fn every_split_point_yields_the_same_requests() {
        let stream: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\nSET \"a b\" 'c'\r\n*0\r\n";
        let expected = parse_all(stream).unwrap();
        for split in 0..=stream.len() {
            let mut parser = RequestParser::default();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(n) = parser.parse(&buf).unwrap() {
                    got.push(
                        parser
                            .args(&buf)
                            .iter()
                            .map(<[u8]>::to_vec)
                            .collect::<Vec<_>>(),
                    );
                    buf.drain(..n);
                }
            }
            assert!(buf.is_empty(), "split {split}");
            assert_eq!(got, expected, "split {split}");
        }
    }

    #[test]
    fn byte_at_a_time_feeding_completes_once() {
        let stream: &[u8] = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        let mut parser = RequestParser::default();
        for end in 1..stream.len() {
            assert_eq!(parser.parse(&stream[..end]).unwrap(), None, "end {end}");
        }
        assert_eq!(parser.parse(stream).unwrap(), Some(stream.len()));
    }

    #[test]
    fn empty_and_non_positive_multibulk_counts_are_empty_requests() {
        assert_eq!(
            parse_all(b"*0\r\n*-1\r\n\r\n").unwrap(),
            vec![Vec::<Vec<u8>>::new(); 3]
        );
    }

    #[test]
    fn protocol_errors_use_redis_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
            (
                b"*3000000000\r\n",
                "ERR Protocol error: invalid multibulk length",
            ),
            (b"*1\r\n+x\r\n", "ERR Protocol error: expected '$', got '+'"),
            (b"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\n$x\r\n", "ERR Protocol error: invalid bulk length"),
            (
                b"*1\r\n$536870913\r\n",
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"SET \"a\r\n",
                "ERR Protocol error: unbalanced quotes in request",
            ),
            (
                b"SET \"a\"b\r\n",
                "ERR Protocol error: unbalanced quotes in request",
            ),
            (
                b"SET 'a\r\n",
                "ERR Protocol error: unbalanced quotes in request",
            ),
        ];
        for (input, text) in cases {
            let err = parse_all(input).unwrap_err();
            assert_eq!(
                err.to_string(),
                *text,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_client_yet_to_authenticate_is_held_to_small_requests() {
        let mut parser = RequestParser::default();
        parser.set_unauthenticated(true);
        let ten = b"*10\r\n"
            .iter()
            .chain(&b"$1\r\na\r\n".repeat(10))
            .copied()
            .collect::<Vec<_>>();
        assert!(parser.parse(&ten).unwrap().is_some());
        assert_eq!(
            parser.parse(b"*11\r\n"),
            Err(ParseError::UnauthenticatedMultibulkLength)
        );
        assert_eq!(
            parser.parse(b"*1\r\n$16385\r\n"),
            Err(ParseError::UnauthenticatedBulkLength)
        );
        parser.set_unauthenticated(false);
        assert_eq!(
            parser.parse(b"*1\r\n$16385\r\n"),
            Ok(None),
            "waits for the value"
        );
    }

    #[test]
    fn oversized_header_lines_are_rejected_without_a_terminator() {
        let mut parser = RequestParser::default();
        let long = [b"*".as_slice(), &[b'1'; MAX_INLINE_LEN + 1]].concat();
        assert_eq!(parser.parse(&long), Err(ParseError::TooBigMultibulkCount));
        let inline = vec![b'a'; MAX_INLINE_LEN + 1];
        assert_eq!(parser.parse(&inline), Err(ParseError::TooBigInline));
        let bulk = [b"*1\r\n$".as_slice(), &[b'1'; MAX_INLINE_LEN + 1]].concat();
        assert_eq!(parser.parse(&bulk), Err(ParseError::TooBigBulkCount));
    }

    #[test]
    fn a_huge_declared_bulk_waits_without_allocating() {
        let mut parser = RequestParser::default();
        let header = b"*2\r\n$3\r\nSET\r\n$500000000\r\n";
        assert_eq!(parser.parse(header).unwrap(), None);
        assert!(parser.missing(header.len()) >= 500_000_000);
        assert!(parser.spans.capacity() < 64);
    }

    #[test]
    fn bulk_limit_is_configurable() {
        let mut parser = RequestParser::new(4);
        assert_eq!(
            parser.parse(b"*1\r\n$5\r\nhello\r\n"),
            Err(ParseError::InvalidBulkLength)
        );
        parser.set_max_bulk_len(5);
        assert_eq!(parser.parse(b"*1\r\n$5\r\nhello\r\n"), Ok(Some(15)));
    }

    #[test]
    fn inline_requests_unescape_like_redis() {
        let got = parse_all(b"set k \"a\\x41\\n\\\"b\" 'it\\'s'  \r\nPING\n  \r\n").unwrap();
        assert_eq!(
            got[0],
            vec![
                b"set".to_vec(),
                b"k".to_vec(),
                b"aA\n\"b".to_vec(),
                b"it's".to_vec()
            ]
        );
        assert_eq!(got[1], words(&["PING"]));
        assert!(got[2].is_empty());
    }

    /// A small deterministic fuzzer: random bytes and mutations of valid pipelines. The parser
    /// must never panic, never claim more bytes than it was given, and give the same requests
    /// whether the input arrives whole or in two pieces.
    #[test]
    fn fuzzed_inputs_never_panic_and_split_consistently() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n.max(1) as u64) as usize
        };
        let seeds: &[&[u8]] = &[
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
            b"*1\r\n$4\r\nPING\r\n",
            b"SET k \"a\\x41 b\" 'c\\'d'\r\n",
            b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n",
        ];
        let alphabet = b"*$\r\n-0123456789abc \"'\\x";
        for _ in 0..20_000 {
            let mut input: Vec<u8> = Vec::new();
            for _ in 0..1 + rand(4) {
                input.extend_from_slice(seeds[rand(seeds.len())]);
            }
            for _ in 0..rand(4) {
                let at = rand(input.len());
                match rand(3) {
                    0 => input[at] = alphabet[rand(alphabet.len())],
                    1 => input.insert(at, alphabet[rand(alphabet.len())]),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            if rand(10) == 0 {
                input = (0..rand(64)).map(|_| rand(256) as u8).collect();
            }
            let whole = parse_stream(&input, input.len());
            let split = parse_stream(&input, rand(input.len() + 1));
            assert_eq!(whole, split, "{:?}", String::from_utf8_lossy(&input));
        }
    }

    /// Feeds `input` in two pieces split at `split`; returns the requests and how it ended.
    fn parse_stream(input: &[u8], split: usize) -> (Vec<Vec<Vec<u8>>>, Option<ParseError>) {
        let mut parser = RequestParser::new(1 << 20);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for chunk in [&input[..split], &input[split..]] {
            buf.extend_from_slice(chunk);
            loop {
                match parser.parse(&buf) {
                    Ok(Some(n)) => {
                        assert!(n <= buf.len());
                        got.push(parser.args(&buf).iter().map(<[u8]>::to_vec).collect());
                        buf.drain(..n);
                    }
                    Ok(None) => break,
                    Err(e) => return (got, Some(e)),
                }
            }
        }
        (got, None)
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"9223372036854775808"[..],
            b"",
            b"-",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1a",
        ] {
            assert_eq!(parse_int(bad), None, "{:?}", bad);
        }
    }
}
