//! Recording metadata (RFC 7865, `application/rs-metadata+xml`): who took part in the recorded
//! call, which stream each one sends, and the session's ids.
//!
//! Tolerant of what real SRCs send: namespace `urn:ietf:params:xml:ns:recording:1` or the
//! pre-RFC `urn:ietf:params:xml:ns:recording`, any prefix (elements are matched by local name), the
//! draft style of AudioCodes (`id=`/`session=` attributes, `<send>`/`<recv>` inside
//! `<participant>`), and vendor elements (`callData`, `ac:*`), which are skipped except that every
//! leaf's text stays findable by its local name ([`Metadata::element`]) so a deployment can take
//! the platform's own call id (an Avaya UCID, say) from wherever its SBC puts it.
//!
//! A `partial` update ([`Metadata::merge`]) adds to and changes what a `complete` one said.

use quick_xml::events::{BytesStart, Event};

use super::SipError;

/// Most participants, streams or leaves kept from one document (a bound on memory).
pub const MAX_ITEMS: usize = 256;

/// `<datamode>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// The document says everything (the default).
    Complete,
    /// The document changes or adds to what was said.
    Partial,
}

/// A `<participant>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participant {
    /// `participant_id` (or the draft's `id`).
    pub id: String,
    /// Each `<nameID aor=…>`.
    pub aors: Vec<String>,
    /// Each `<name>` under `<nameID>`.
    pub names: Vec<String>,
    /// Streams it sends (`<send>` of its `<participantstreamassoc>`, or the draft's own).
    pub send: Vec<String>,
    /// Streams it receives.
    pub recv: Vec<String>,
}

/// A `<stream>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stream {
    /// `stream_id` (or `id`).
    pub id: String,
    /// `session_id` (or `session`).
    pub session: Option<String>,
    /// `<label>`: the SDP `a=label` of its m-line.
    pub label: Option<String>,
}

/// What one or more metadata documents said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The last `<datamode>`.
    pub datamode: Option<DataMode>,
    /// Each `<session session_id>` (or `id`).
    pub sessions: Vec<String>,
    /// Each `<sipSessionID>`.
    pub sip_session_ids: Vec<String>,
    /// Each `<group group_id>`.
    pub groups: Vec<String>,
    /// The participants.
    pub participants: Vec<Participant>,
    /// The streams.
    pub streams: Vec<Stream>,
    /// Every leaf element's local name and trimmed text, in document order.
    leaves: Vec<(String, String)>,
}

fn attr(e: &BytesStart<'_>, names: &[&str]) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        let key = a.key.local_name();
        let key = std::str::from_utf8(key.as_ref()).ok()?;
        names
            .contains(&key)
            .then(|| a.unescape_value().ok().map(|v| v.trim().to_owned()))
            .flatten()
    })
}

fn local(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

/// Where in the document the parser is.
#[derive(Debug, Clone)]
enum Scope {
    Participant(usize),
    Stream(usize),
    Assoc(usize),
    Other,
}

fn bad(reason: String) -> SipError {
    SipError::BadMetadata(reason.chars().take(120).collect())
}

/// Parses one metadata document.
pub fn parse(xml: &str) -> Result<Metadata, SipError> {
    let mut md = Metadata::default();
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    let mut text = String::new();
    let mut root_seen = false;
    loop {
        let ev = reader.read_event().map_err(|e| bad(format!("xml: {e}")))?;
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = local(e);
            if !root_seen {
                if name != "recording" {
                    return Err(bad(format!("root element is {name}, not recording")));
                }
                root_seen = true;
            }
            if path.len() >= 32 {
                return Err(bad("nested more than 32 deep".into()));
            }
            let parent_scope = scopes.last().cloned().unwrap_or(Scope::Other);
            let scope = open(&mut md, &name, e, &path, &parent_scope)?;
            text.clear();
            if empty {
                close(&mut md, &name, "", &parent_scope);
            } else {
                path.push(name);
                scopes.push(scope);
            }
            continue;
        }
        match ev {
            Event::Text(t) => {
                let s = t.xml_content().map_err(|e| bad(format!("text: {e}")))?;
                text.push_str(&s);
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| bad(format!("cdata: {e}")))?;
                text.push_str(&s);
            }
            Event::GeneralRef(r) => {
                let raw = r.decode().map_err(|e| bad(format!("reference: {e}")))?;
                let entity = format!("&{raw};");
                let s = quick_xml::escape::unescape(&entity)
                    .map_err(|e| bad(format!("reference: {e}")))?;
                text.push_str(&s);
            }
            Event::End(_) => {
                let name = path.pop().ok_or_else(|| bad("unbalanced end tag".into()))?;
                scopes.pop();
                let parent = scopes.last().cloned().unwrap_or(Scope::Other);
                let value = text.trim().to_owned();
                close(&mut md, &name, &value, &parent);
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(bad("no recording element".into()));
    }
    if !path.is_empty() {
        return Err(bad("document ends inside an element".into()));
    }
    Ok(md)
}

fn open(
    md: &mut Metadata,
    name: &str,
    e: &BytesStart<'_>,
    path: &[String],
    parent: &Scope,
) -> Result<Scope, SipError> {
    let full = |what: &str| bad(format!("more than {MAX_ITEMS} {what}"));
    let in_root = path.len() == 1;
    Ok(match name {
        "participant" if in_root => {
            let id = attr(e, &["participant_id", "id"]).unwrap_or_default();
            Scope::Participant(participant(md, &id).ok_or_else(|| full("participants"))?)
        }
        "participantstreamassoc" if in_root => {
            let id = attr(e, &["participant_id", "id"]).unwrap_or_default();
            Scope::Assoc(participant(md, &id).ok_or_else(|| full("participants"))?)
        }
        "stream" if in_root => {
            let id = attr(e, &["stream_id", "id"]).unwrap_or_default();
            let i = match md.streams.iter().position(|s| s.id == id) {
                Some(i) => i,
                None if md.streams.len() < MAX_ITEMS => {
                    md.streams.push(Stream {
                        id,
                        ..Stream::default()
                    });
                    md.streams.len() - 1
                }
                None => return Err(full("streams")),
            };
            if let Some(s) = attr(e, &["session_id", "session"]) {
                md.streams[i].session = Some(s);
            }
            Scope::Stream(i)
        }
        "session" if in_root => {
            if let Some(id) = attr(e, &["session_id", "id"])
                && !md.sessions.contains(&id)
                && md.sessions.len() < MAX_ITEMS
            {
                md.sessions.push(id);
            }
            Scope::Other
        }
        "group" if in_root => {
            if let Some(id) = attr(e, &["group_id", "id"])
                && !md.groups.contains(&id)
                && md.groups.len() < MAX_ITEMS
            {
                md.groups.push(id);
            }
            Scope::Other
        }
        "nameID" | "nameId" | "nameid" => {
            if let (Scope::Participant(i), Some(aor)) = (parent, attr(e, &["aor"]))
                && md.participants[*i].aors.len() < 16
                && !md.participants[*i].aors.contains(&aor)
            {
                md.participants[*i].aors.push(aor);
            }
            // <name> below it belongs to the same participant
            parent.clone()
        }
        "aor" => parent.clone(),
        _ => Scope::Other,
    })
}

fn close(md: &mut Metadata, name: &str, value: &str, parent: &Scope) {
    if !value.is_empty() && md.leaves.len() < MAX_ITEMS {
        md.leaves
            .push((name.to_owned(), value.chars().take(256).collect()));
    }
    if value.is_empty() {
        return;
    }
    let v = value.to_owned();
    match (name, parent) {
        ("datamode", _) => {
            md.datamode = match value {
                "partial" => Some(DataMode::Partial),
                _ => Some(DataMode::Complete),
            }
        }
        ("sipSessionID", _) if md.sip_session_ids.len() < 16 => md.sip_session_ids.push(v),
        ("label", Scope::Stream(i)) => md.streams[*i].label = Some(v),
        ("name", Scope::Participant(i)) if md.participants[*i].names.len() < 16 => {
            md.participants[*i].names.push(v)
        }
        // the draft style: <aor> text inside <participant>
        ("aor", Scope::Participant(i)) if !md.participants[*i].aors.contains(&v) => {
            md.participants[*i].aors.push(v)
        }
        ("send", Scope::Participant(i) | Scope::Assoc(i)) => {
            let p = &mut md.participants[*i];
            if !p.send.contains(&v) && p.send.len() < 16 {
                p.send.push(v);
            }
        }
        ("recv", Scope::Participant(i) | Scope::Assoc(i)) => {
            let p = &mut md.participants[*i];
            if !p.recv.contains(&v) && p.recv.len() < 16 {
                p.recv.push(v);
            }
        }
        _ => {}
    }
}

fn participant(md: &mut Metadata, id: &str) -> Option<usize> {
    if let Some(i) = md.participants.iter().position(|p| p.id == id) {
        return Some(i);
    }
    if md.participants.len() >= MAX_ITEMS {
        return None;
    }
    md.participants.push(Participant {
        id: id.to_owned(),
        ..Participant::default()
    });
    Some(md.participants.len() - 1)
}

impl Metadata {
    /// Folds a later document in: a `complete` one replaces what was known, a `partial` one adds
    /// to it (participants and streams by id).
    pub fn merge(&mut self, later: Metadata) {
        if later.datamode != Some(DataMode::Partial) {
            *self = later;
            return;
        }
        self.datamode = later.datamode;
        for s in later.sessions {
            if !self.sessions.contains(&s) {
                self.sessions.push(s);
            }
        }
        self.sip_session_ids.extend(later.sip_session_ids);
        self.sip_session_ids.dedup();
        for g in later.groups {
            if !self.groups.contains(&g) {
                self.groups.push(g);
            }
        }
        for p in later.participants {
            let room = self.participants.len() < MAX_ITEMS;
            match self.participants.iter_mut().find(|q| q.id == p.id) {
                Some(q) => {
                    for a in p.aors {
                        if !q.aors.contains(&a) {
                            q.aors.push(a);
                        }
                    }
                    for n in p.names {
                        if !q.names.contains(&n) {
                            q.names.push(n);
                        }
                    }
                    for s in p.send {
                        if !q.send.contains(&s) {
                            q.send.push(s);
                        }
                    }
                    for s in p.recv {
                        if !q.recv.contains(&s) {
                            q.recv.push(s);
                        }
                    }
                }
                None if room => self.participants.push(p),
                None => {}
            }
        }
        for s in later.streams {
            let room = self.streams.len() < MAX_ITEMS;
            match self.streams.iter_mut().find(|t| t.id == s.id) {
                Some(t) => {
                    if s.label.is_some() {
                        t.label = s.label;
                    }
                    if s.session.is_some() {
                        t.session = s.session;
                    }
                }
                None if room => self.streams.push(s),
                None => {}
            }
        }
        let room = MAX_ITEMS.saturating_sub(self.leaves.len());
        self.leaves.extend(later.leaves.into_iter().take(room));
    }

    /// The participant that sends the stream labelled `label` (SDP `a=label` → `<stream>` →
    /// `<send>`).
    pub fn sender_of(&self, label: &str) -> Option<&Participant> {
        let stream = self
            .streams
            .iter()
            .find(|s| s.label.as_deref() == Some(label))?;
        self.participants
            .iter()
            .find(|p| p.send.contains(&stream.id))
    }

    /// The text of the first leaf element whose local name is `name` (any namespace), e.g. a
    /// vendor's `ucid`.
    pub fn element(&self, name: &str) -> Option<&str> {
        self.leaves
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The telephone number or user of a SIP/tel AOR: `sip:+441632960001@sbc` → `+441632960001`,
/// `tel:+44…` → `+44…`.
pub fn aor_user(aor: &str) -> Option<&str> {
    let rest = aor
        .trim()
        .strip_prefix("sips:")
        .or_else(|| aor.trim().strip_prefix("sip:"))
        .or_else(|| aor.trim().strip_prefix("tel:"))?;
    let user = rest.split(['@', ';', '?']).next()?;
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7865 style, with a prefix and a vendor extension.
    const RFC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<tns:recording xmlns:tns="urn:ietf:params:xml:ns:recording:1" xmlns:av="urn:avaya">
  <tns:datamode>complete</tns:datamode>
  <tns:group group_id="7+OTCyoxTmqmqyA/1weDAg==">
    <tns:associate-time>2010-12-16T23:41:07Z</tns:associate-time>
  </tns:group>
  <tns:session session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <tns:sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</tns:sipSessionID>
    <tns:group-ref>7+OTCyoxTmqmqyA/1weDAg==</tns:group-ref>
    <av:extensiondata><av:ucid>00001002161640012345</av:ucid></av:extensiondata>
  </tns:session>
  <tns:participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <tns:nameID aor="sip:+441632960001@example.com"><tns:name xml:lang="en">Bob &amp; Co</tns:name></tns:nameID>
  </tns:participant>
  <tns:participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <tns:nameID aor="sip:agent42@example.com"/>
  </tns:participant>
  <tns:stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><tns:label>96</tns:label></tns:stream>
  <tns:stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><tns:label>97</tns:label></tns:stream>
  <tns:participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <tns:send>i1Pz3to5hGk8fuXl+PbwCw==</tns:send><tns:recv>UAAMm5GRQKSCMVvLyl4rFw==</tns:recv>
  </tns:participantstreamassoc>
  <tns:participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <tns:send>UAAMm5GRQKSCMVvLyl4rFw==</tns:send>
  </tns:participantstreamassoc>
</tns:recording>"#;

    /// AudioCodes' draft style.
    const DRAFT: &str = r#"<recording xmlns='urn:ietf:params:xml:ns:recording'>
  <datamode>complete</datamode>
  <session id="0000-0000-0000-0000-b44497aaf9597f7f"><start-time>2010-01-01T00:00:00Z</start-time></session>
  <participant id="1" session="0000-0000-0000-0000-b44497aaf9597f7f">
    <nameID aor="+441632960002@10.0.0.2"><name>Alice</name></nameID>
    <send>s1</send><recv>s2</recv>
  </participant>
  <stream id="s1" session="0000-0000-0000-0000-b44497aaf9597f7f"><label>1</label></stream>
  <ac:AudioCodesMetaData xmlns:ac="http://AudioCodes"><ac:label>9</ac:label></ac:AudioCodesMetaData>
</recording>"#;

    #[test]
    fn rfc_style_maps_labels_to_participants() {
        let md = parse(RFC).expect("parses");
        assert_eq!(md.datamode, Some(DataMode::Complete));
        assert_eq!(md.sessions, ["hVpd7YQgRW2nD22h7q60JQ=="]);
        assert_eq!(md.groups, ["7+OTCyoxTmqmqyA/1weDAg=="]);
        assert_eq!(md.sip_session_ids.len(), 1);
        let caller = md.sender_of("97").expect("label 97");
        assert_eq!(caller.aors, ["sip:+441632960001@example.com"]);
        assert_eq!(caller.names, ["Bob & Co"]);
        assert_eq!(
            md.sender_of("96").expect("96").aors,
            ["sip:agent42@example.com"]
        );
        assert_eq!(md.element("ucid"), Some("00001002161640012345"));
        assert!(md.sender_of("1").is_none());
    }

    #[test]
    fn draft_style_and_vendor_elements() {
        let md = parse(DRAFT).expect("parses");
        let p = md.sender_of("1").expect("label 1");
        assert_eq!(p.names, ["Alice"]);
        assert_eq!(p.recv, ["s2"]);
        // the vendor's <ac:label> is not a stream label
        assert!(md.sender_of("9").is_none());
        assert_eq!(aor_user(&p.aors[0]), None);
        assert_eq!(
            aor_user("sip:+441632960002@10.0.0.2"),
            Some("+441632960002")
        );
        assert_eq!(
            aor_user("tel:+441632960002;phone-context=x"),
            Some("+441632960002")
        );
    }

    #[test]
    fn a_partial_update_adds_and_a_complete_one_replaces() {
        let mut md = parse(RFC).expect("parses");
        let update = r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial</datamode>
            <participant participant_id="new1"><nameID aor="sip:supervisor@example.com"/></participant>
            <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw=="><label>98</label></stream>
            <participantstreamassoc participant_id="new1"><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv></participantstreamassoc>
            </recording>"#;
        md.merge(parse(update).expect("parses"));
        assert_eq!(md.participants.len(), 3);
        assert_eq!(
            md.sender_of("98").expect("relabelled").aors,
            ["sip:agent42@example.com"]
        );
        assert_eq!(md.sessions.len(), 1);
        md.merge(parse(DRAFT).expect("parses"));
        assert_eq!(md.participants.len(), 1);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            "",
            "<other/>",
            "<recording><participant></recording>",
            "<recording>",
            "not xml at all <",
            "<recording>&bogus;</recording>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = format!(
            "<recording>{}</recording>",
            "<a>".repeat(40) + &"</a>".repeat(40)
        );
        assert!(parse(&deep).is_err());
        let many = format!(
            "<recording>{}</recording>",
            (0..300)
                .map(|i| format!("<participant participant_id=\"{i}\"/>"))
                .collect::<String>()
        );
        assert!(parse(&many).is_err());
    }
}
