//! The wire side of Tessera: RESP2/RESP3 request parsing and reply encoding, the command
//! table that drives dispatch and `COMMAND`, and the Redis Cluster hash-slot function.
//! Nothing here knows about sockets, threads or storage.

pub mod command;
pub mod frame;
pub mod parse;
pub mod reply;
pub mod slot;

pub use command::{Cmd, CommandSpec};
pub use parse::{Args, ParseError, RequestParser};
pub use reply::ReplyWriter;
pub use slot::{key_slot, SLOT_COUNT};
