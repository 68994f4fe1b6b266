//! Splits one batch line into arguments the way a shell would for simple cases: blanks
//! separate, `"…"` and `'…'` group, a backslash escapes the next character (outside single
//! quotes). `#` at the start of a line makes it a comment.

use thiserror::Error;

/// A line that cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenizeError {
    /// A quote was opened and never closed.
    #[error("unterminated quote")]
    UnterminatedQuote,
    /// The line ends in a lone backslash.
    #[error("line ends in a backslash")]
    TrailingBackslash,
}

/// The arguments of `line`; empty for a blank or comment line.
pub fn split(line: &str) -> Result<Vec<String>, TokenizeError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Vec::new());
    }
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut current));
                    in_arg = false;
                }
            }
            '\\' => {
                current.push(chars.next().ok_or(TokenizeError::TrailingBackslash)?);
                in_arg = true;
            }
            '\'' => {
                in_arg = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err(TokenizeError::UnterminatedQuote),
                    }
                }
            }
            '"' => {
                in_arg = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            current.push(chars.next().ok_or(TokenizeError::UnterminatedQuote)?)
                        }
                        Some(c) => current.push(c),
                        None => return Err(TokenizeError::UnterminatedQuote),
                    }
                }
            }
            c => {
                current.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(current);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(split("  # comment").unwrap(), Vec::<String>::new());
        assert_eq!(split("").unwrap(), Vec::<String>::new());
        assert_eq!(
            split(r#"ca a@b.c 'p w' displayName "Ann \"A\" O'Neil" x\ y ''"#).unwrap(),
            [
                "ca",
                "a@b.c",
                "p w",
                "displayName",
                "Ann \"A\" O'Neil",
                "x y",
                ""
            ]
        );
        assert_eq!(split("a 'b"), Err(TokenizeError::UnterminatedQuote));
        assert_eq!(split("a b\\"), Err(TokenizeError::TrailingBackslash));
    }
}
