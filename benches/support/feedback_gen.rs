//! Deterministic synthetic customer feedback (fixed seed), shared by the routing benchmark and
//! tests. About 150 bytes a row, so a million rows make a ~150 MB CSV.

use std::io::{self, Write};

pub(super) const HEADER: &str = "id,created_at,customer,channel,product_area,rating,language,text\n";

const CHANNELS: &[&str] = &["email", "chat", "phone", "app_store", "survey", "social"];
const AREAS: &[&str] = &["billing", "shipping", "mobile_app", "website", "account", "pricing", "support", "catalog"];
const LANGS: &[&str] = &["en", "en", "en", "de", "fr", "es"];
const OPENERS: &[&str] = &[
    "I was charged twice for my order",
    "The refund still has not arrived",
    "My parcel is late again",
    "Tracking number does not work",
    "The app crashes when I open the cart",
    "Cannot log in after the update",
    "Password reset email never came",
    "The website is very slow today",
    "Prices went up without notice",
    "Your agent was rude and unhelpful",
    "Great service, thank you so much",
    "I want to cancel my subscription",
    "Please add dark mode to the app",
    "Someone accessed my account, possible fraud",
    "The translation on the checkout page is wrong",
    "Invoice shows the wrong VAT number",
    "Delivery driver left the box in the rain",
    "Love the new design",
    "Checkout page timed out twice",
    "Coupon code was not accepted",
];
const FILLER: &[&str] = &[
    "please",
    "help",
    "today",
    "again",
    "order",
    "really",
    "quite",
    "honestly",
    "this",
    "week",
    "since",
    "monday",
    "very",
    "disappointed",
    "happy",
    "customer",
    "years",
    "still",
    "waiting",
    "answer",
    "thanks",
    "regards",
];

/// splitmix64, so the data is identical on every machine and Rust version.
pub(super) struct Rng(u64);
impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

/// Writes `rows` rows (plus header). Timestamps run backwards from 2024-05-02T12:00:00Z, a few
/// seconds apart; ratings lean positive like real CSAT data; 1 in 1000 texts is hostile HTML.
pub(super) fn write_feedback(out: &mut impl Write, rows: u64, seed: u64) -> io::Result<()> {
    let mut r = Rng::new(seed);
    out.write_all(HEADER.as_bytes())?;
    let base = 1_714_651_200i64; // 2024-05-02T12:00:00Z
    let mut text = String::with_capacity(200);
    for i in 0..rows {
        let ts = base - (i as i64) * 3 - (r.next() % 3) as i64;
        let (y, mo, d, h, mi, s) = civil(ts);
        let rating = match r.next() % 10 {
            0 => 1,
            1 => 2,
            2 | 3 => 3,
            4..=6 => 4,
            _ => 5,
        };
        text.clear();
        text.push_str(r.pick(OPENERS));
        for _ in 0..(4 + r.next() % 7) {
            text.push(' ');
            text.push_str(r.pick(FILLER));
        }
        if i % 1000 == 7 {
            text.push_str(" <script>alert(\"x\")</script>");
        }
        if r.next().is_multiple_of(4) {
            text.push_str(", \"quoted\" part");
        }
        writeln!(
            out,
            "FB-{i:07},{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z,cust{c}@example.com,{ch},{area},{rating},{lang},\"{t}\"",
            c = r.next() % 100_000,
            ch = r.pick(CHANNELS),
            area = r.pick(AREAS),
            lang = r.pick(LANGS),
            t = text.replace('"', "\"\""),
        )?;
    }
    Ok(())
}

fn civil(ts: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Twelve teams with regex and keyword rules over the generated data.
pub(super) const TEAMS_YAML: &str = r#"
teams:
  - name: Security
    email: security@example.com
    priority: 100
    when: {field: text, regex: '(?i)\b(fraud|hack(ed)?|accessed my account|phishing)\b'}
    urgent: {field: created_at, within: 1d}
  - name: Refunds
    email: refunds@example.com
    priority: 50
    when: {field: text, regex: '(?i)\b(refunds?|charged twice|chargeback)\b'}
    urgent: {field: rating, lte: 2}
  - name: Billing
    email: billing@example.com
    when:
      any:
        - {field: product_area, equals: billing}
        - {field: text, regex: '(?i)\b(invoice|VAT|receipt)\b'}
    urgent: {field: rating, lte: 1}
  - name: Shipping
    email: [shipping@example.com, logistics@example.com]
    when: {field: text, regex: '(?i)\b(parcel|tracking|delivery|driver|box)\b'}
    urgent: {all: [{field: rating, lte: 2}, {field: text, contains: [rain, damaged]}]}
  - name: Mobile
    email: mobile@example.com
    when: {all: [{field: text, regex: '(?i)\b(app|crash(es|ed)?)\b'}, {field: channel, one_of: [app_store, email, chat]}]}
    urgent: {field: text, contains: crash}
  - name: Accounts
    email: accounts@example.com
    when: {field: text, regex: '(?i)\b(log ?in|password|account)\b'}
  - name: Web
    email: web@example.com
    when: {field: text, regex: '(?i)\b(website|slow|timed? ?out|checkout)\b'}
  - name: Pricing
    email: pricing@example.com
    when: {field: text, regex: '(?i)\b(prices?|coupon|discount)\b'}
  - name: Support quality
    email: support-lead@example.com
    when: {all: [{field: text, regex: '(?i)\b(rude|unhelpful|agent)\b'}, {field: rating, lte: 3}]}
  - name: Retention
    email: retention@example.com
    when: {field: text, regex: '(?i)\bcancel(led|ling)?\b.*\bsubscription\b'}
    urgent: {field: rating, lte: 2}
  - name: Product ideas
    email: product@example.com
    when: {field: text, regex: '(?i)\b(please add|feature|dark mode|would love)\b'}
  - name: Localization
    email: l10n@example.com
    when: {any: [{field: text, regex: '(?i)\btranslat(ion|ed)\b'}, {all: [{field: language, one_of: [de, fr, es]}, {field: rating, lte: 2}]}]}
"#;

/// Texts of the "ops" case: English, some German, French and Spanish (about one row in six is
/// not ASCII), and words that contain a keyword without being it (`happy`, `recharged`,
/// `applications`), which whole-word rules must not match.
const OPS_OPENERS: &[&str] = &[
    "I was charged twice for my order",
    "The refund still has not arrived",
    "Invoice shows the wrong VAT number",
    "Where is my receipt",
    "My parcel is late again",
    "Tracking number does not work",
    "Delivery driver left the box in the rain",
    "The app crashes when I open the cart",
    "App update broke the login screen",
    "Cannot log in after the update",
    "Password reset email never came",
    "Someone hacked my account, possible fraud",
    "The website is very slow today",
    "Checkout page timed out twice",
    "Your agent was rude and unhelpful",
    "Great service, thank you so much",
    "Love the new design",
    "Recharged my card but nothing happened",
    "Applications like yours should be faster",
    "Die Rückerstattung für meine Bestellung fehlt noch",
    "Die App stürzt ständig ab, bitte prüfen",
    "Le colis est arrivé abîmé, très déçu",
    "Facture erronée, merci de corriger",
    "El envío llegó tarde y la caja estaba rota",
    "Mi cuenta fue bloqueada sin razón",
];
/// Words the ops case adds to `FILLER` (picked as if appended to it, so the data is unchanged).
const OPS_EXTRA_FILLER: &[&str] = &["merci", "danke", "gracias"];

/// Like `write_feedback`, with the multilingual texts of the ops case (about 147 bytes a row).
pub(super) fn write_feedback_ops(out: &mut impl Write, rows: u64, seed: u64) -> io::Result<()> {
    let mut r = Rng::new(seed);
    out.write_all(HEADER.as_bytes())?;
    let base = 1_714_651_200i64; // 2024-05-02T12:00:00Z
    let mut text = String::with_capacity(200);
    for i in 0..rows {
        let ts = base - (i as i64) * 3 - (r.next() % 3) as i64;
        let (y, mo, d, h, mi, s) = civil(ts);
        let rating = match r.next() % 10 {
            0 => 1,
            1 => 2,
            2 | 3 => 3,
            4..=6 => 4,
            _ => 5,
        };
        text.clear();
        text.push_str(r.pick(OPS_OPENERS));
        for _ in 0..(3 + r.next() % 6) {
            text.push(' ');
            let i = (r.next() % (FILLER.len() + OPS_EXTRA_FILLER.len()) as u64) as usize;
            text.push_str(FILLER.get(i).copied().unwrap_or_else(|| OPS_EXTRA_FILLER[i - FILLER.len()]));
        }
        if r.next().is_multiple_of(5) {
            text.push_str(", \"quoted\" part");
        }
        writeln!(
            out,
            "FB-{i:07},{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z,cust{c}@example.com,{ch},{area},{rating},{lang},\"{t}\"",
            c = r.next() % 100_000,
            ch = r.pick(CHANNELS),
            area = r.pick(AREAS),
            lang = r.pick(LANGS),
            t = text.replace('"', "\"\""),
        )?;
    }
    Ok(())
}

/// The ops case: six teams as ops people write them (product area, rating bounds, whole-word
/// case-insensitive keyword lists as regexes), all matches, the rest to Triage.
pub(super) const OPS_TEAMS_YAML: &str = r#"
teams:
  - name: Billing
    email: billing@example.com
    when:
      any:
        - {field: product_area, one_of: [billing, pricing]}
        - {field: text, regex: '(?i)\b(?:invoice|refund|refunds|charge|charged|vat|receipt|rückerstattung|facture)\b'}
    urgent: {field: rating, lte: 1}
  - name: Shipping
    email: shipping@example.com
    when:
      any:
        - {field: product_area, equals: shipping}
        - {field: text, regex: '(?i)\b(?:parcel|tracking|delivery|driver|box|late|colis|envío)\b'}
    urgent: {all: [{field: rating, lte: 2}, {field: text, regex: '(?i)\b(?:rain|damaged|abîmé|rota)\b'}]}
  - name: Mobile
    email: mobile@example.com
    when:
      all:
        - {field: text, regex: '(?i)\b(?:app|crash|crashes|update|stürzt)\b'}
        - {field: rating, lte: 3}
    urgent: {field: rating, lte: 1}
  - name: Accounts
    email: accounts@example.com
    when: {field: text, regex: '(?i)\b(?:login|log in|password|account|fraud|hacked|cuenta)\b'}
    urgent: {field: text, regex: '(?i)\b(?:fraud|hacked)\b'}
  - name: Web
    email: web@example.com
    when:
      all:
        - {field: product_area, one_of: [website, catalog, support]}
        - {field: text, regex: '(?i)\b(?:website|slow|checkout|timed out|page)\b'}
  - name: Support quality
    email: support-lead@example.com
    when:
      all:
        - {field: rating, gte: 1, lte: 2}
        - {field: text, regex: '(?i)\b(?:rude|unhelpful|agent|waiting|déçu)\b'}
  - name: Triage
    email: triage@example.com
"#;
