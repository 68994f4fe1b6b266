//! The deterministic mail every account starts with: `--messages` RFC 5322 messages that
//! name the account and the mailbox host (so a test can see which server it reached),
//! every third one a MIME multipart message.

/// Seconds since the Unix epoch of the first generated message (2024-01-01 09:00 UTC).
const FIRST_DATE: i64 = 1_704_099_600;

/// The RFC 2822 date of `unix` seconds (UTC).
pub fn rfc2822_date(unix: i64) -> String {
    let (y, mo, d, h, mi, s, wd) = civil(unix);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {h:02}:{mi:02}:{s:02} +0000",
        DAYS[wd],
        MONTHS[(mo - 1) as usize]
    )
}

/// The IMAP INTERNALDATE form (`01-Jan-2024 09:00:00 +0000`).
pub fn imap_date(unix: i64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(unix);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}-{}-{y} {h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    )
}

/// Parses an IMAP date-time (`05-Jan-2024 10:00:00 +0000`, day may have a leading space).
pub fn parse_imap_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(' ')?;
    let (time, zone) = rest.trim().split_once(' ')?;
    let mut dp = date.split('-');
    let day: i64 = dp.next()?.trim().parse().ok()?;
    let mon = dp.next()?;
    let year: i64 = dp.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as i64 + 1;
    let mut tp = time.split(':');
    let (h, mi, s): (i64, i64, i64) = (
        tp.next()?.parse().ok()?,
        tp.next()?.parse().ok()?,
        tp.next()?.parse().ok()?,
    );
    if zone.len() != 5 || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some(days * 86400 + h * 3600 + mi * 60 + s - sign * (zh * 3600 + zm * 60))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day, hour, minute, second, weekday index with 0 = Thursday).
fn civil(unix: i64) -> (i64, i64, i64, i64, i64, i64, usize) {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        days.rem_euclid(7) as usize,
    )
}

/// Message `n` (1-based) of `account` on `hostname`, and its internal date.
pub fn generated(account: &str, hostname: &str, n: usize) -> (Vec<u8>, i64) {
    let date = FIRST_DATE + 3600 * n as i64;
    let subject = format!("Message {n} for {account} on {hostname}");
    let mut m = format!(
        "Return-Path: <postmaster@{hostname}>\r\n\
         From: \"Mailbox Stub\" <postmaster@{hostname}>\r\n\
         To: <{account}>\r\n\
         Subject: {subject}\r\n\
         Date: {}\r\n\
         Message-ID: <{n}.{}@{hostname}>\r\n\
         X-Mailbox-Host: {hostname}\r\n\
         MIME-Version: 1.0\r\n",
        rfc2822_date(date),
        account.replace('@', "."),
    );
    if n % 3 == 2 {
        let boundary = format!("=_stub_{n}");
        m.push_str(&format!(
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
             This is a MIME message.\r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\n\
             Hello {account},\r\n\r\n\
             this is message {n}, the plain-text part, served by {hostname}.\r\n\
             --{boundary}\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\n\
             <html><body><p>Hello {account},</p><p>this is message {n}, the HTML part, \
             served by {hostname}.</p></body></html>\r\n\
             --{boundary}--\r\n"
        ));
    } else {
        m.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\n\
             Hello {account},\r\n\r\n\
             this is message {n}, served by {hostname}.\r\n\
             .a line that starts with a dot, for POP3 dot-stuffing\r\n\
             The end.\r\n"
        ));
    }
    (m.into_bytes(), date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc2822_date(FIRST_DATE), "Mon, 01 Jan 2024 09:00:00 +0000");
        assert_eq!(imap_date(FIRST_DATE), "01-Jan-2024 09:00:00 +0000");
        assert_eq!(
            parse_imap_date("01-Jan-2024 09:00:00 +0000"),
            Some(FIRST_DATE)
        );
        assert_eq!(
            parse_imap_date(" 1-Jan-2024 10:00:00 +0100"),
            Some(FIRST_DATE)
        );
        assert_eq!(
            parse_imap_date("29-Feb-2024 00:00:00 +0000"),
            Some(1_709_164_800)
        );
        assert_eq!(parse_imap_date("nonsense"), None);
    }

    #[test]
    fn messages_name_account_and_host() {
        let (m, _) = generated("ann@example.com", "mbx1.example.com", 2);
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("To: <ann@example.com>\r\n"));
        assert!(text.contains("X-Mailbox-Host: mbx1.example.com\r\n"));
        assert!(text.contains("Subject: Message 2 for ann@example.com on mbx1.example.com\r\n"));
        assert!(text.contains("multipart/alternative"));
    }
}
