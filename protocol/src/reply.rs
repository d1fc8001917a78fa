//! Reply encoding for RESP2 and RESP3. Commands write straight into the connection's output
//! buffer through a `ReplyWriter`, so a reply is never built as a tree first.

/// Appends RESP replies to a buffer in the protocol version the client chose with `HELLO`.
pub struct ReplyWriter<'a> {
    buf: &'a mut Vec<u8>,
    resp3: bool,
}

impl<'a> ReplyWriter<'a> {
    pub fn new(buf: &'a mut Vec<u8>, resp3: bool) -> Self {
        ReplyWriter { buf, resp3 }
    }

    pub fn resp3(&self) -> bool {
        self.resp3
    }

    /// The bytes written so far, for callers that stage replies.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.buf
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string; it must not contain CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply. `text` starts with its code (`ERR`, `WRONGTYPE`, ...); line breaks in it
    /// are replaced so that one error can never break the framing.
    pub fn error(&mut self, text: &str) {
        self.buf.push(b'-');
        self.buf.extend(
            text.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, value: i64) {
        self.buf.push(b':');
        push_int(self.buf, value);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.buf.push(b'$');
        push_int(self.buf, data.len() as i64);
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer sent as a bulk string (GET of an integer-encoded value).
    pub fn bulk_int(&mut self, value: i64) {
        self.bulk(itoa_buf(value).as_slice());
    }

    pub fn null(&mut self) {
        self.buf
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// The null used where an array would be (`*-1` in RESP2).
    pub fn null_array(&mut self) {
        self.buf
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    pub fn array(&mut self, len: usize) {
        self.header(b'*', len);
    }

    /// A map of `len` pairs: `%` in RESP3, a flat array of `2 * len` items in RESP2.
    pub fn map(&mut self, len: usize) {
        if self.resp3 {
            self.header(b'%', len);
        } else {
            self.header(b'*', len * 2);
        }
    }

    /// A set: `~` in RESP3, an array in RESP2.
    pub fn set(&mut self, len: usize) {
        self.header(if self.resp3 { b'~' } else { b'*' }, len);
    }

    /// A push message (pub/sub): `>` in RESP3, an array in RESP2.
    pub fn push(&mut self, len: usize) {
        self.header(if self.resp3 { b'>' } else { b'*' }, len);
    }

    pub fn boolean(&mut self, value: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if value { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(value as i64);
        }
    }

    /// A double: `,` in RESP3, a bulk string in RESP2; shortest text that reads back exactly.
    pub fn double(&mut self, value: f64) {
        let text = format_double(value);
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// Free text such as INFO: a verbatim string (`=`) in RESP3, a bulk string in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.buf.push(b'=');
            push_int(self.buf, text.len() as i64 + 4);
            self.buf.extend_from_slice(b"\r\ntxt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    fn header(&mut self, kind: u8, len: usize) {
        self.buf.push(kind);
        push_int(self.buf, len as i64);
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// A number rendered as decimal digits on the stack.
pub struct Digits {
    bytes: [u8; 20],
    start: usize,
}

impl Digits {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Decimal text of `value` without allocating.
pub fn itoa_buf(value: i64) -> Digits {
    let mut bytes = [0u8; 20];
    let mut pos = bytes.len();
    let mut n = value.unsigned_abs();
    loop {
        pos -= 1;
        bytes[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        pos -= 1;
        bytes[pos] = b'-';
    }
    Digits { bytes, start: pos }
}

/// Appends the decimal text of `value`.
pub fn push_int(buf: &mut Vec<u8>, value: i64) {
    buf.extend_from_slice(itoa_buf(value).as_slice());
}

/// The text Tessera uses for a double: shortest round-trip digits, `inf` / `-inf` / `nan`.
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if value.is_nan() {
        "nan".into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(resp3: bool, f: impl FnOnce(&mut ReplyWriter)) -> String {
        let mut buf = Vec::new();
        f(&mut ReplyWriter::new(&mut buf, resp3));
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn scalar_replies() {
        assert_eq!(encode(false, |w| w.ok()), "+OK\r\n");
        assert_eq!(encode(false, |w| w.int(-42)), ":-42\r\n");
        assert_eq!(
            encode(false, |w| w.int(i64::MIN)),
            ":-9223372036854775808\r\n"
        );
        assert_eq!(encode(false, |w| w.bulk(b"hi")), "$2\r\nhi\r\n");
        assert_eq!(encode(false, |w| w.bulk(b"")), "$0\r\n\r\n");
        assert_eq!(encode(false, |w| w.bulk_int(1234)), "$4\r\n1234\r\n");
        assert_eq!(
            encode(false, |w| w.error("ERR bad\r\nthing")),
            "-ERR bad  thing\r\n"
        );
    }

    #[test]
    fn nulls_differ_by_protocol() {
        assert_eq!(encode(false, |w| w.null()), "$-1\r\n");
        assert_eq!(encode(false, |w| w.null_array()), "*-1\r\n");
        assert_eq!(encode(true, |w| w.null()), "_\r\n");
        assert_eq!(encode(true, |w| w.null_array()), "_\r\n");
    }

    #[test]
    fn aggregates_differ_by_protocol() {
        assert_eq!(encode(false, |w| w.map(2)), "*4\r\n");
        assert_eq!(encode(true, |w| w.map(2)), "%2\r\n");
        assert_eq!(encode(false, |w| w.set(3)), "*3\r\n");
        assert_eq!(encode(true, |w| w.set(3)), "~3\r\n");
        assert_eq!(encode(true, |w| w.push(3)), ">3\r\n");
        assert_eq!(encode(true, |w| w.boolean(true)), "#t\r\n");
        assert_eq!(encode(false, |w| w.boolean(true)), ":1\r\n");
    }

    #[test]
    fn doubles_and_verbatim_text() {
        assert_eq!(encode(true, |w| w.double(1.5)), ",1.5\r\n");
        assert_eq!(encode(false, |w| w.double(0.1)), "$3\r\n0.1\r\n");
        assert_eq!(encode(true, |w| w.double(f64::NEG_INFINITY)), ",-inf\r\n");
        assert_eq!(encode(true, |w| w.verbatim(b"a:1")), "=7\r\ntxt:a:1\r\n");
        assert_eq!(encode(false, |w| w.verbatim(b"a:1")), "$3\r\na:1\r\n");
    }
}
