//! The machine contract that every Sluice state machine follows.
//!
//! A machine is a value that is told what happened ([`Machine::handle`]), is asked
//! what it wants done ([`Machine::poll`], drained after every `handle`), and says
//! when it wants to be woken ([`Machine::next_deadline`]). It performs no I/O,
//! reads no clock and draws no OS randomness, so the same inputs always produce
//! the same outputs: `net` drives machines on real sockets, `sim` on simulated ones.
//!
//! # Requests and tokens
//!
//! When a machine needs an answer from the outside world (is this recipient
//! known? is this message durable?) it emits an output carrying a fresh
//! [`Token`] and waits; the driver answers with an input carrying the same token.
//! A token that the machine no longer waits for is ignored, so late answers after
//! a timeout are harmless.
//!
//! # Limits
//!
//! Every buffer, line, list and queue a machine holds has a bound, gathered in a
//! `Limits` struct beside the machine with documented defaults (`Limits::default()`).
//! Going over a bound is an explicit output — an error reply, a refusal — never a
//! panic and never unbounded memory.
//!
//! # A worked example
//!
//! A tiny machine that answers each `ping` line with `pong`, asks the outside
//! world to log every 3rd ping, and gives up after 30 idle seconds:
//!
//! ```
//! use sluice_core::machine::{Machine, Token, TokenSource};
//! use sluice_core::time::{Duration, Instant};
//! use std::collections::VecDeque;
//!
//! enum Input { Line(String), Logged(Token), Tick }
//! #[derive(Debug, PartialEq)]
//! enum Output { Send(&'static str), Log(Token, u32), Close }
//!
//! struct Pinger { pings: u32, idle_since: Instant, tokens: TokenSource, outputs: VecDeque<Output> }
//!
//! impl Machine for Pinger {
//!     type Input = Input;
//!     type Output = Output;
//!     fn handle(&mut self, now: Instant, input: Input) {
//!         match input {
//!             Input::Line(line) if line == "ping" => {
//!                 self.idle_since = now;
//!                 self.pings += 1;
//!                 self.outputs.push_back(Output::Send("pong"));
//!                 if self.pings % 3 == 0 {
//!                     self.outputs.push_back(Output::Log(self.tokens.next(), self.pings));
//!                 }
//!             }
//!             Input::Line(_) | Input::Logged(_) => {}
//!             Input::Tick if now >= self.idle_since + Duration::from_secs(30) => {
//!                 self.outputs.push_back(Output::Close);
//!             }
//!             Input::Tick => {}
//!         }
//!     }
//!     fn poll(&mut self) -> Option<Output> { self.outputs.pop_front() }
//!     fn next_deadline(&self) -> Option<Instant> { Some(self.idle_since + Duration::from_secs(30)) }
//! }
//!
//! let mut pinger = Pinger {
//!     pings: 0, idle_since: Instant::EPOCH, tokens: TokenSource::default(), outputs: VecDeque::new(),
//! };
//! let t = Instant::from_millis(1_000);
//! for _ in 0..3 { pinger.handle(t, Input::Line("ping".into())); }
//! let drained: Vec<Output> = std::iter::from_fn(|| pinger.poll()).collect();
//! assert_eq!(drained.len(), 4); // three pongs and one log request
//! assert_eq!(pinger.next_deadline(), Some(Instant::from_millis(31_000)));
//! pinger.handle(Instant::from_millis(31_000), Input::Tick);
//! assert_eq!(pinger.poll(), Some(Output::Close));
//! ```

use crate::time::Instant;
use core::fmt;

/// The shape shared by every Sluice machine.
pub trait Machine {
    /// Everything that can happen to the machine: bytes arrived, an answer to a
    /// request, a timer fired, the peer went away.
    type Input;
    /// Everything the machine wants done: send bytes, look something up,
    /// persist something, close, report an event.
    type Output;

    /// Something happened at `now`.
    fn handle(&mut self, now: Instant, input: Self::Input);

    /// The next thing the machine wants done; drain until `None` after each `handle`.
    fn poll(&mut self) -> Option<Self::Output>;

    /// When the machine wants to be woken with its tick input, if at all.
    fn next_deadline(&self) -> Option<Instant>;
}

/// Names a request so that its answer can be matched to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u64);

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Hands out tokens unique within one machine instance, in increasing order.
#[derive(Clone, Debug, Default)]
pub struct TokenSource {
    next: u64,
}

impl TokenSource {
    /// A fresh token, never returned before by this source.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Token {
        self.next += 1;
        Token(self.next)
    }
}
