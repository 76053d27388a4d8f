//! A small, strict HTTP/1.1 server-side codec: request-head parsing, request-body framing
//! (Content-Length and chunked, read and discarded) and response writing.
//!
//! Nothing here panics on input and nothing allocates per request: a connection owns one
//! fixed read buffer and the caller reuses one output buffer.

mod conn;
mod request;
mod response;

pub use conn::*;
pub use request::*;
pub use response::*;
