//! Framing the client's input: lines and literals (RFC 9051 §4.3, RFC 7888).
//!
//! A command is one or more lines; a line ending in `{n}` or `{n+}` announces a
//! literal of `n` octets that follows the line's CRLF, after which the command
//! continues with another line. The framer only finds the boundaries: it collects
//! one command's bytes, stops at each literal announcement so the session can
//! decide (with imap-codec, which confirms the literal sits where the grammar
//! allows one) whether to take it, and skips what the session refused.
//!
//! Refusing a literal (our choice, per RFC 9051 §7.5 and RFC 7888 §4): a
//! synchronising literal is refused before the client sends it (no `+`, a tagged
//! response ends the command, the client sends nothing more of it); a
//! non-synchronising literal is already on its way, so its octets are read and
//! dropped, as is the rest of the command, and the tagged response follows. Dropped
//! octets are counted, never stored, so memory stays bounded either way.
//!
//! Lines end in LF; a CR before it is removed from what the session sees as the line
//! end (clients that send a bare LF are tolerated, as by Dovecot and imap-codec).

/// Where the framer is within the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Collecting a line of the current command.
    Line,
    /// Reading a literal's octets into the command.
    Literal { remaining: u32 },
    /// Dropping octets through the next LF (an overlong line).
    DropLine,
    /// Dropping a refused non-synchronising literal, then the rest of its command.
    DropLiteral { remaining: u32 },
    /// Dropping the rest of a refused command, line by line.
    DropCommand,
}

/// A literal announced at the end of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Announcement {
    pub(super) length: u32,
    /// `{n}`: the client waits for `+` before sending it.
    pub(super) synchronising: bool,
}

/// What the framer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Framed {
    /// A whole command, its lines and literals; [`Framer::take_command`] gives it.
    Command,
    /// The current line ends with a literal announcement; call
    /// [`Framer::accept_literal`] or [`Framer::refuse_literal`]. The command so far
    /// is [`Framer::command`].
    Literal(Announcement),
    /// A single line (in line mode), without its line end.
    Line(Vec<u8>),
    /// A line longer than the limit; its start (at most 64 octets) for finding the
    /// tag. The rest of it is being dropped.
    TooLong { start: Vec<u8> },
    /// A refused command has been dropped to its end: time for its tagged response.
    Dropped,
}

/// How the next octets are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadMode {
    /// Commands, with literals.
    Command,
    /// Plain lines (AUTHENTICATE responses, IDLE's DONE): no literal announcements.
    Line,
}

/// The input buffer and one command being collected.
#[derive(Debug)]
pub(super) struct Framer {
    input: Vec<u8>,
    start: usize,
    command: Vec<u8>,
    /// Where the current line started within `command`.
    line_start: usize,
    state: State,
    line_limit: usize,
}

impl Framer {
    /// `line_limit` counts the line end.
    pub(super) fn new(line_limit: usize) -> Framer {
        Framer {
            input: Vec::new(),
            start: 0,
            command: Vec::new(),
            line_start: 0,
            state: State::Line,
            line_limit: line_limit.max(16),
        }
    }

    /// Adds client input.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Gives back memory a burst of input (a large APPEND) left behind, once
    /// everything has been read: idle sessions must stay small.
    pub(super) fn compact(&mut self) {
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
            if self.input.capacity() > 64 * 1024 {
                self.input.shrink_to(4096);
            }
        }
        if self.command.is_empty() && self.command.capacity() > 64 * 1024 {
            self.command.shrink_to(4096);
        }
    }

    /// Unprocessed input held.
    pub(super) fn pending(&self) -> usize {
        self.input.len() - self.start
    }

    /// Octets held: unprocessed input and the command being collected.
    pub(super) fn buffered(&self) -> usize {
        self.pending() + self.command.len()
    }

    /// The command collected so far.
    pub(super) fn command(&self) -> &[u8] {
        &self.command
    }

    /// Takes the whole command after [`Framed::Command`].
    pub(super) fn take_command(&mut self) -> Vec<u8> {
        self.line_start = 0;
        core::mem::take(&mut self.command)
    }

    /// Drops everything unprocessed (after STARTTLS, or when closing).
    pub(super) fn clear(&mut self) {
        self.input.clear();
        self.start = 0;
        self.command.clear();
        self.line_start = 0;
        self.state = State::Line;
    }

    /// Reads the announced literal into the command.
    pub(super) fn accept_literal(&mut self, announcement: Announcement) {
        self.state = State::Literal {
            remaining: announcement.length,
        };
    }

    /// Refuses the announced literal: a synchronising one was never sent, so the
    /// command ends here; a non-synchronising one is dropped with the rest of its
    /// command, and [`Framed::Dropped`] says when that is done.
    pub(super) fn refuse_literal(&mut self, announcement: Announcement) {
        self.command.clear();
        self.line_start = 0;
        self.state = if announcement.synchronising {
            State::Line
        } else {
            State::DropLiteral {
                remaining: announcement.length,
            }
        };
    }

    /// The next thing found, if the input holds it.
    pub(super) fn next(&mut self, mode: ReadMode) -> Option<Framed> {
        loop {
            let input = &self.input[self.start..];
            match self.state {
                State::Line => {
                    let line_so_far = self.command.len() - self.line_start;
                    let room = self.line_limit.saturating_sub(line_so_far);
                    let window = &input[..input.len().min(room)];
                    match window.iter().position(|&byte| byte == b'\n') {
                        Some(lf) => {
                            self.command.extend_from_slice(&window[..=lf]);
                            self.start += lf + 1;
                            let line = &self.command[self.line_start..];
                            if mode == ReadMode::Line {
                                let content = line_content(line).to_vec();
                                self.command.clear();
                                self.line_start = 0;
                                return Some(Framed::Line(content));
                            }
                            if let Some(announcement) = announcement(line_content(line)) {
                                return Some(Framed::Literal(announcement));
                            }
                            return Some(Framed::Command);
                        }
                        None if input.len() >= room => {
                            let start_len = self.command.len().min(64);
                            let mut start = self.command[..start_len].to_vec();
                            let more = 64usize.saturating_sub(start.len()).min(input.len());
                            start.extend_from_slice(&input[..more]);
                            self.start += window.len();
                            self.command.clear();
                            self.line_start = 0;
                            self.state = State::DropLine;
                            return Some(Framed::TooLong { start });
                        }
                        None => {
                            self.command.extend_from_slice(input);
                            self.start += input.len();
                            return None;
                        }
                    }
                }
                State::Literal { remaining } => {
                    let take = input.len().min(remaining as usize);
                    self.command.extend_from_slice(&input[..take]);
                    self.start += take;
                    let left = remaining - take as u32;
                    if left > 0 {
                        self.state = State::Literal { remaining: left };
                        return None;
                    }
                    self.state = State::Line;
                    self.line_start = self.command.len();
                }
                State::DropLine => match input.iter().position(|&byte| byte == b'\n') {
                    Some(lf) => {
                        self.start += lf + 1;
                        self.state = State::Line;
                    }
                    None => {
                        self.start += input.len();
                        return None;
                    }
                },
                State::DropLiteral { remaining } => {
                    let take = input.len().min(remaining as usize);
                    self.start += take;
                    let left = remaining - take as u32;
                    if left > 0 {
                        self.state = State::DropLiteral { remaining: left };
                        return None;
                    }
                    self.state = State::DropCommand;
                    self.command.clear();
                }
                State::DropCommand => {
                    // The rest of the command: lines, kept only up to the limit so
                    // that a further announcement at a line's end can be seen.
                    match input.iter().position(|&byte| byte == b'\n') {
                        Some(lf) => {
                            let keep = (lf + 1).min(self.line_limit);
                            let tail_start = lf + 1 - keep;
                            self.command.extend_from_slice(&input[tail_start..=lf]);
                            self.start += lf + 1;
                            let found = announcement(line_content(&self.command));
                            self.command.clear();
                            match found {
                                Some(next) if !next.synchronising => {
                                    self.state = State::DropLiteral {
                                        remaining: next.length,
                                    };
                                }
                                // A synchronising literal is never sent without
                                // our `+`: the command ends here.
                                _ => {
                                    self.state = State::Line;
                                    return Some(Framed::Dropped);
                                }
                            }
                        }
                        None => {
                            // Keep the last few octets: an announcement may straddle.
                            let keep = input.len().min(24);
                            self.command.extend_from_slice(&input[input.len() - keep..]);
                            if self.command.len() > 48 {
                                let cut = self.command.len() - 24;
                                self.command.drain(..cut);
                            }
                            self.start += input.len();
                            return None;
                        }
                    }
                }
            }
        }
    }
}

/// A line without its LF and the CR before it.
fn line_content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The literal announced at the end of a line's content: `{n}` or `{n+}`.
fn announcement(content: &[u8]) -> Option<Announcement> {
    let inner = content.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&byte| byte == b'{')?;
    let inner = &inner[open + 1..];
    let (digits, synchronising) = match inner.strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = core::str::from_utf8(digits).ok()?.parse::<u32>().ok()?;
    Some(Announcement {
        length,
        synchronising,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks`, accepting every literal, and collects what is found.
    fn frame(chunks: &[&[u8]], mode: ReadMode) -> Vec<(Framed, Vec<u8>)> {
        let mut framer = Framer::new(100);
        let mut found = Vec::new();
        for chunk in chunks {
            framer.push(chunk);
            while let Some(framed) = framer.next(mode) {
                match &framed {
                    Framed::Literal(announcement) => {
                        found.push((framed.clone(), framer.command().to_vec()));
                        framer.accept_literal(*announcement);
                    }
                    Framed::Command => found.push((framed, framer.take_command())),
                    _ => found.push((framed, Vec::new())),
                }
            }
        }
        found
    }

    #[test]
    fn lines_and_literals() {
        let found = frame(
            &[b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\nb NOOP\r\n"],
            ReadMode::Command,
        );
        assert_eq!(found.len(), 4);
        assert_eq!(
            found[0].0,
            Framed::Literal(Announcement {
                length: 5,
                synchronising: true
            })
        );
        assert_eq!(
            found[1].0,
            Framed::Literal(Announcement {
                length: 6,
                synchronising: false
            })
        );
        assert_eq!(
            found[2],
            (
                Framed::Command,
                b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n".to_vec()
            )
        );
        assert_eq!(found[3], (Framed::Command, b"b NOOP\r\n".to_vec()));
    }

    #[test]
    fn a_literal_may_hold_line_ends_and_braces() {
        let found = frame(&[b"a APPEND x {8}\r\n{1}\r\n\r\n\n\r\n"], ReadMode::Command);
        assert_eq!(
            found.last().map(|f| f.1.clone()),
            Some(b"a APPEND x {8}\r\n{1}\r\n\r\n\n\r\n".to_vec())
        );
    }

    #[test]
    fn line_mode_ignores_announcements() {
        let found = frame(&[b"DONE {5}\r\n"], ReadMode::Line);
        assert_eq!(
            found,
            vec![(Framed::Line(b"DONE {5}".to_vec()), Vec::new())]
        );
    }

    #[test]
    fn overlong_line_is_dropped_through_its_end() {
        let mut framer = Framer::new(20);
        framer.push(b"a1 NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        assert!(
            matches!(framer.next(ReadMode::Command), Some(Framed::TooLong { start }) if start.starts_with(b"a1 NOOP"))
        );
        framer.push(b"yyyy\r\nb NOOP\r\n");
        assert_eq!(framer.next(ReadMode::Command), Some(Framed::Command));
        assert_eq!(framer.take_command(), b"b NOOP\r\n");
    }

    #[test]
    fn refused_synchronising_literal_ends_the_command() {
        let mut framer = Framer::new(100);
        framer.push(b"a LOGIN {500}\r\nb NOOP\r\n");
        let Some(Framed::Literal(announcement)) = framer.next(ReadMode::Command) else {
            panic!("no literal")
        };
        framer.refuse_literal(announcement);
        assert_eq!(framer.next(ReadMode::Command), Some(Framed::Command));
        assert_eq!(framer.take_command(), b"b NOOP\r\n");
    }

    #[test]
    fn refused_non_synchronising_literal_is_dropped_with_its_command() {
        let mut framer = Framer::new(100);
        framer.push(b"a APPEND x {10+}\r\n0123456789 {3+}\r\nabc\r\nb NOOP\r\n");
        let Some(Framed::Literal(announcement)) = framer.next(ReadMode::Command) else {
            panic!("no literal")
        };
        framer.refuse_literal(announcement);
        assert_eq!(framer.next(ReadMode::Command), Some(Framed::Dropped));
        assert_eq!(framer.next(ReadMode::Command), Some(Framed::Command));
        assert_eq!(framer.take_command(), b"b NOOP\r\n");
    }

    #[test]
    fn announcements() {
        assert_eq!(
            announcement(b"a {12}"),
            Some(Announcement {
                length: 12,
                synchronising: true
            })
        );
        assert_eq!(
            announcement(b"a {0+}"),
            Some(Announcement {
                length: 0,
                synchronising: false
            })
        );
        assert_eq!(announcement(b"a {}"), None);
        assert_eq!(announcement(b"a {+}"), None);
        assert_eq!(announcement(b"a {99999999999}"), None);
        assert_eq!(announcement(b"a {1x}"), None);
    }

    proptest! {
        /// Any split of the input finds the same frames.
        #[test]
        fn any_split_frames_alike(cuts in proptest::collection::vec(0usize..120, 0..8)) {
            let input: &[u8] = b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\nb NOOP\r\nc APPEND x {3}\r\n\r\n}\r\n";
            let whole = frame(&[input], ReadMode::Command);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(input.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for cut in cuts {
                chunks.push(&input[last..cut]);
                last = cut;
            }
            chunks.push(&input[last..]);
            prop_assert_eq!(frame(&chunks, ReadMode::Command), whole);
        }

        /// Arbitrary input never makes the framer hold more than its line limit of a
        /// line, and never panics.
        #[test]
        fn arbitrary_input_is_bounded(input in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut framer = Framer::new(64);
            for chunk in input.chunks(7) {
                framer.push(chunk);
                while let Some(framed) = framer.next(ReadMode::Command) {
                    match framed {
                        Framed::Literal(announcement) => framer.refuse_literal(announcement),
                        Framed::Command => { framer.take_command(); }
                        _ => {}
                    }
                }
                prop_assert!(framer.buffered() <= 64 + 7);
            }
        }
    }
}
