//! Error replies shared by the command families, worded exactly as Redis words them.

pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
pub const TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_RANGE: &str = "ERR offset is out of range";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const DB_RANGE: &str = "ERR DB index is out of range";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";

/// An error reply: a fixed text or one built from the command's name or arguments.
pub type Error = std::borrow::Cow<'static, str>;

pub fn invalid_expire(command: &str) -> Error {
    format!("ERR invalid expire time in '{command}' command").into()
}

pub fn unknown_subcommand(sub: &[u8], command: &str) -> Error {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        command.to_ascii_uppercase()
    )
    .into()
}

pub fn wrong_arity(command: &str) -> Error {
    format!("ERR wrong number of arguments for '{command}' command").into()
}

/// Reads a strict integer argument.
pub fn int_arg(arg: &[u8]) -> Result<i64, Error> {
    tessera_protocol::parse::parse_int(arg).ok_or(NOT_INTEGER.into())
}

/// Reads a blocking command's timeout, seconds with a fraction, as milliseconds (0: forever).
pub fn timeout_arg(arg: &[u8]) -> Result<u64, &'static str> {
    let seconds = float_arg(arg)
        .filter(|s| s.is_finite())
        .ok_or("ERR timeout is not a float or out of range")?;
    if seconds < 0.0 {
        return Err("ERR timeout is negative");
    }
    let ms = (seconds * 1000.0).ceil();
    if ms >= i64::MAX as f64 {
        return Err("ERR timeout is out of range");
    }
    Ok(ms as u64)
}

/// Reads a float argument the way Redis's `string2ld` does: no spaces, no NaN.
pub fn float_arg(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| !v.is_nan())
}
