//! A command line split as memcached splits it: on single spaces only (a tab or a CR is
//! part of a token), runs of spaces giving no empty tokens.

/// Most tokens kept; memcached's tokenizer stops at 23 plus the rest of the line.
pub(super) const MAX_TOKENS: usize = 24;

/// The space-separated tokens of one line, as spans so that "the rest of the line from
/// token i" is available for keys and meta flags.
pub(super) struct Tokens<'a> {
    line: &'a [u8],
    spans: [(usize, usize); MAX_TOKENS],
    /// How many tokens were kept.
    pub(super) len: usize,
    /// More than [`MAX_TOKENS`] tokens: the rest were not kept.
    pub(super) overflow: bool,
}

impl<'a> Tokens<'a> {
    pub(super) fn new(line: &'a [u8]) -> Self {
        let mut t = Tokens {
            line,
            spans: [(0, 0); MAX_TOKENS],
            len: 0,
            overflow: false,
        };
        let mut i = 0;
        while i < line.len() {
            if line[i] == b' ' {
                i += 1;
                continue;
            }
            let start = i;
            while i < line.len() && line[i] != b' ' {
                i += 1;
            }
            if t.len == MAX_TOKENS {
                t.overflow = true;
                break;
            }
            t.spans[t.len] = (start, i);
            t.len += 1;
        }
        t
    }

    /// Token `i`; empty when there is none.
    pub(super) fn get(&self, i: usize) -> &'a [u8] {
        if i < self.len {
            let (s, e) = self.spans[i];
            &self.line[s..e]
        } else {
            &[]
        }
    }

    /// The last token kept.
    pub(super) fn last(&self) -> &'a [u8] {
        self.get(self.len.wrapping_sub(1))
    }

    /// The line from the start of token `i` to its end (empty when there is no token `i`).
    pub(super) fn rest(&self, i: usize) -> &'a [u8] {
        if i < self.len {
            &self.line[self.spans[i].0..]
        } else {
            &[]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_spaces_only() {
        let t = Tokens::new(b"  mg\tx  key v\r ");
        assert_eq!((t.len, t.overflow), (3, false));
        assert_eq!(t.get(0), b"mg\tx");
        assert_eq!(t.get(1), b"key");
        assert_eq!(t.get(2), b"v\r");
        assert_eq!(t.get(3), b"");
        assert_eq!(t.last(), b"v\r");
        assert_eq!(t.rest(1), b"key v\r ");
        assert_eq!(t.rest(3), b"");
        let many = b"a ".repeat(30);
        let t = Tokens::new(&many);
        assert_eq!((t.len, t.overflow), (MAX_TOKENS, true));
        assert_eq!(Tokens::new(b"").last(), b"");
    }
}
