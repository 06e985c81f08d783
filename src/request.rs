//! Decodes the parts of the waPC `validate` payload the policy uses.
//!
//! The object stays a raw `serde_json::Value`: it is never typed, so fields
//! unknown to any Kubernetes schema survive. Errors name the field, never
//! echo the payload (it may hold env values).
//!
//! Two decoders give the same answer: [`decode`], one pass over the payload
//! text that builds a `Value` only for the object (and the old object of an
//! UPDATE) and decodes the settings' text straight into [`Settings`] (with
//! plain serde_json, and only when the text differs from the last payload's,
//! see `LAST_SETTINGS`), and [`Input::from_payload`], which parses the
//! whole payload into a `Value` first. [`decode`] gives up (`None`) on
//! anything unusual (a JSON error, a `request` that is not an object,
//! settings that do not decode or validate), and the caller then takes the
//! other path, which says what is wrong exactly as it always did (naming the
//! field through serde_path_to_error).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::settings::Settings;

/// `{"request": AdmissionRequest, "settings": ...}`, reduced to what we read.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub uid: String,
    pub group: String,
    pub kind: String,
    pub operation: String,
    pub namespace: String,
    pub object: Value,
    /// The object before an UPDATE (`null` otherwise).
    pub old_object: Value,
    /// Who sent the request, as the API server authenticated it.
    pub user: UserInfo,
}

/// The request's `userInfo`: where the caller's token claims end up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// Reads `userInfo`, ignoring values of the wrong JSON type.
    fn from_value(value: Option<&Value>) -> UserInfo {
        let Some(value) = value else {
            return UserInfo::default();
        };
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        UserInfo {
            username: value
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            uid: value
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            groups: strings(value.get("groups")),
            extra: value
                .get("extra")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), strings(Some(v))))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl Input {
    /// Splits a validate payload into the request and the raw settings.
    pub fn from_payload(payload: &[u8]) -> Result<(Input, Value), String> {
        let mut doc: Value = serde_json::from_slice(payload).map_err(|e| {
            format!(
                "validation payload is not JSON: {}",
                describe_json_error(&e)
            )
        })?;
        let settings = doc
            .get_mut("settings")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let mut request = match doc.get_mut("request").map(Value::take) {
            Some(request @ Value::Object(_)) => request,
            _ => return Err("validation payload has no \"request\" object".to_string()),
        };
        let text =
            |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        let kind = request.get("kind").cloned().unwrap_or(Value::Null);
        let input = Input {
            uid: text(&request, "uid"),
            group: text(&kind, "group"),
            kind: text(&kind, "kind"),
            operation: text(&request, "operation"),
            namespace: text(&request, "namespace"),
            object: request
                .get_mut("object")
                .map(Value::take)
                .unwrap_or(Value::Null),
            old_object: request
                .get_mut("oldObject")
                .map(Value::take)
                .unwrap_or(Value::Null),
            user: UserInfo::from_value(request.get("userInfo")),
        };
        Ok((input, settings))
    }

    /// A request built in tests or by the native host.
    pub fn pod_create(namespace: &str, object: Value) -> Input {
        Input {
            uid: String::new(),
            group: String::new(),
            kind: "Pod".to_string(),
            operation: "CREATE".to_string(),
            namespace: namespace.to_string(),
            object,
            old_object: Value::Null,
            user: UserInfo::default(),
        }
    }
}

/// serde_json's message without its position; for untyped parsing it never
/// quotes the input, so no env value can leak into a denial.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(pos) => message.get(..pos).unwrap_or(&message).to_string(),
        None => message,
    }
}

/// The request and the settings of a validate payload in one pass, or
/// `None` when [`Input::from_payload`] and `Settings::from_value` must
/// decide instead (they name what is wrong). Whatever this returns is what
/// those two return on the same payload; it only skips the work for the
/// parts the policy never reads: they are checked as strictly as a `Value`
/// parse checks them (UTF-8, escapes, numbers, nesting depth), then dropped.
pub fn decode(payload: &[u8]) -> Option<(Input, Rc<Settings>)> {
    let envelope: Envelope = serde_json::from_slice(payload).ok()?;
    let Request {
        uid,
        group,
        kind,
        operation,
        namespace,
        object,
        old_object,
        old_object_skipped,
        operation_seen: _,
        user,
    } = envelope.request?;
    // The old object is only ever read for an UPDATE; it was skipped when
    // the operation read before it was another one.
    if old_object_skipped && operation == "UPDATE" {
        return None;
    }
    let settings = match envelope.settings {
        None => Rc::new(Settings::default()),
        Some(text) => settings_of(text.get().as_bytes())?,
    };
    let input = Input {
        uid,
        group,
        kind,
        operation,
        namespace,
        object,
        old_object,
        user,
    };
    Some((input, settings))
}

/// `{"request": ..., "settings": ...}`; the last of duplicate keys wins, as
/// in a `Value`.
struct Envelope<'de> {
    /// `None` when the last `request` is not an object.
    request: Option<Request>,
    /// The settings' text, checked as JSON; `None` when absent or `null`
    /// (the defaults, unchecked, as `from_value`).
    settings: Option<&'de RawValue>,
}

/// Settings text and what it decoded to.
type Decoded = (Box<[u8]>, Rc<Settings>);

thread_local! {
    /// The settings this instance decoded last, by their exact text. Every
    /// payload carries the settings, and a fresh instance (policy-server)
    /// decodes them once anyway; an instance that serves many requests
    /// (kwctl bench, a host that reuses instances) decodes them once for
    /// all the requests with the same settings instead of once each.
    static LAST_SETTINGS: Cell<Option<Decoded>> = const { Cell::new(None) };
}

/// Decoded and validated settings for this text, from [`LAST_SETTINGS`]
/// when the text is byte for byte the last one's. `None` when they do not
/// decode or validate (the two-step path then says why). Public for the
/// benches' splice-floor guest, which must read settings as the policy does.
pub fn settings_of(text: &[u8]) -> Option<Rc<Settings>> {
    LAST_SETTINGS.with(|last| {
        if let Some((cached, settings)) = last.take() {
            if *cached == *text {
                let hit = Rc::clone(&settings);
                last.set(Some((cached, settings)));
                return Some(hit);
            }
        }
        let settings = Rc::new(Settings::from_payload_text(text)?);
        last.set(Some((text.into(), Rc::clone(&settings))));
        Some(settings)
    })
}

#[derive(Default)]
struct Request {
    uid: String,
    group: String,
    kind: String,
    operation: String,
    namespace: String,
    object: Value,
    old_object: Value,
    /// The old object was checked and dropped, not kept.
    old_object_skipped: bool,
    /// An `operation` was read (before any `oldObject` that follows it).
    operation_seen: bool,
    user: UserInfo,
}

/// Names of the keys this module reads, whatever their escapes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Request,
    Settings,
    Uid,
    Kind,
    Group,
    Operation,
    Namespace,
    Object,
    OldObject,
    UserInfo,
    Username,
    Groups,
    Extra,
    Other,
}

impl Key {
    fn of(name: &str) -> Key {
        match name {
            "request" => Key::Request,
            "settings" => Key::Settings,
            "uid" => Key::Uid,
            "kind" => Key::Kind,
            "group" => Key::Group,
            "operation" => Key::Operation,
            "namespace" => Key::Namespace,
            "object" => Key::Object,
            "oldObject" => Key::OldObject,
            "userInfo" => Key::UserInfo,
            "username" => Key::Username,
            "groups" => Key::Groups,
            "extra" => Key::Extra,
            _ => Key::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, name: &str) -> Result<Key, E> {
                Ok(Key::of(name))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, parsed as a `Value` would be and kept nowhere: the same
/// input is refused (bad UTF-8 or escapes, numbers out of range, nesting
/// past serde_json's limit) without allocating for what is accepted.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
        deserializer
            .deserialize_any(Lenient(|_: Scalar| ()))
            .map(|_| Skip)
    }
}

/// A scalar a lenient field may take.
enum Scalar<'a> {
    Str(&'a str),
    Other,
}

/// Visits any value: scalars go to the closure, lists and objects are
/// skipped (checked) and count as [`Scalar::Other`].
struct Lenient<F>(F);

impl<'de, T, F: FnOnce(Scalar) -> T> Visitor<'de> for Lenient<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_str<E>(self, text: &str) -> Result<T, E> {
        Ok((self.0)(Scalar::Str(text)))
    }
    fn visit_unit<E>(self) -> Result<T, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_none<E>(self) -> Result<T, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok((self.0)(Scalar::Other))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok((self.0)(Scalar::Other))
    }
}

/// A string, or `None` for any other value (checked and skipped).
struct MaybeText(Option<String>);

impl<'de> Deserialize<'de> for MaybeText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MaybeText, D::Error> {
        deserializer.deserialize_any(Lenient(|s: Scalar| match s {
            Scalar::Str(text) => MaybeText(Some(text.to_string())),
            Scalar::Other => MaybeText(None),
        }))
    }
}

impl MaybeText {
    /// As `.as_str().unwrap_or("")` reads a `Value`.
    fn or_empty(self) -> String {
        self.0.unwrap_or_default()
    }
}

/// A list read as `.as_array()` then `filter_map(as_str)`: strings kept,
/// other items dropped; anything but a list reads as empty.
struct Strings(Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strings, D::Error> {
        ShapeVisitor(Strings(Vec::new())).deserialize(deserializer)
    }
}

impl<'de> Shape<'de> for Strings {
    type Out = Strings;
    fn other() -> Strings {
        Strings(Vec::new())
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
        let mut out = self.0;
        while let Some(MaybeText(item)) = seq.next_element()? {
            out.extend(item);
        }
        Ok(Strings(out))
    }
}

/// Reads a value of one shape (a list or an object); [`ShapeVisitor`] checks
/// and skips a value of any other shape and answers [`Shape::other`].
trait Shape<'de>: Sized {
    type Out;
    /// The answer for a value of another shape.
    fn other() -> Self::Out;
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error> {
        Lenient(|_: Scalar| Self::other()).visit_seq(seq)
    }
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        Lenient(|_: Scalar| Self::other()).visit_map(map)
    }
}

/// Reads the entries of one JSON object; [`ShapeVisitor`] checks and
/// skips any other value and answers [`ReadObject::not_object`].
trait ReadObject<'de> {
    type Out;
    /// Reads (or skips) the value of `key`.
    fn entry<A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error>;
    fn finish(self) -> Self::Out;
    /// What a non-object reads as, as `Value::get` sees it.
    fn not_object() -> Self::Out;
}

/// An object read entry by entry: the [`Shape`] of every [`ReadObject`].
impl<'de, R: ReadObject<'de>> Shape<'de> for R {
    type Out = R::Out;
    fn other() -> R::Out {
        R::not_object()
    }
    fn map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<R::Out, A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            self.entry(key, &mut map)?;
        }
        Ok(self.finish())
    }
}

struct ShapeVisitor<R>(R);

impl<'de, R: Shape<'de>> DeserializeSeed<'de> for ShapeVisitor<R> {
    type Value = R::Out;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<R::Out, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, R: Shape<'de>> Visitor<'de> for ShapeVisitor<R> {
    type Value = R::Out;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R::Out, A::Error> {
        self.0.map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R::Out, A::Error> {
        self.0.seq(seq)
    }
    fn visit_bool<E>(self, _: bool) -> Result<R::Out, E> {
        Ok(R::other())
    }
    fn visit_i64<E>(self, _: i64) -> Result<R::Out, E> {
        Ok(R::other())
    }
    fn visit_u64<E>(self, _: u64) -> Result<R::Out, E> {
        Ok(R::other())
    }
    fn visit_f64<E>(self, _: f64) -> Result<R::Out, E> {
        Ok(R::other())
    }
    fn visit_str<E>(self, _: &str) -> Result<R::Out, E> {
        Ok(R::other())
    }
    fn visit_unit<E>(self) -> Result<R::Out, E> {
        Ok(R::other())
    }
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Envelope<'de>, D::Error> {
        ShapeVisitor(Envelope {
            request: None,
            settings: None,
        })
        .deserialize(deserializer)
    }
}

impl<'de> ReadObject<'de> for Envelope<'de> {
    type Out = Envelope<'de>;
    fn entry<A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error> {
        match key {
            Key::Request => self.request = map.next_value_seed(ShapeVisitor(Request::default()))?,
            Key::Settings => self.settings = map.next_value()?,
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
    fn finish(self) -> Envelope<'de> {
        self
    }
    fn not_object() -> Envelope<'de> {
        Envelope {
            request: None,
            settings: None,
        }
    }
}

impl<'de> ReadObject<'de> for Request {
    type Out = Option<Request>;
    fn entry<A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error> {
        let text = |map: &mut A| map.next_value::<MaybeText>().map(MaybeText::or_empty);
        match key {
            Key::Uid => self.uid = text(map)?,
            Key::Kind => {
                (self.group, self.kind) = map.next_value_seed(ShapeVisitor(Kind::default()))?
            }
            Key::Operation => {
                self.operation = text(map)?;
                self.operation_seen = true;
            }
            Key::Namespace => self.namespace = text(map)?,
            Key::Object => self.object = map.next_value()?,
            Key::OldObject if self.operation_seen && self.operation != "UPDATE" => {
                map.next_value::<Skip>()?;
                self.old_object = Value::Null;
                self.old_object_skipped = true;
            }
            Key::OldObject => {
                self.old_object = map.next_value()?;
                self.old_object_skipped = false;
            }
            Key::UserInfo => self.user = map.next_value_seed(ShapeVisitor(UserInfo::default()))?,
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
    fn finish(self) -> Option<Request> {
        Some(self)
    }
    fn not_object() -> Option<Request> {
        None
    }
}

/// The request's `kind`: `(group, kind)`.
#[derive(Default)]
struct Kind(String, String);

impl<'de> ReadObject<'de> for Kind {
    type Out = (String, String);
    fn entry<A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error> {
        match key {
            Key::Group => self.0 = map.next_value::<MaybeText>()?.or_empty(),
            Key::Kind => self.1 = map.next_value::<MaybeText>()?.or_empty(),
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
    fn finish(self) -> (String, String) {
        (self.0, self.1)
    }
    fn not_object() -> (String, String) {
        (String::new(), String::new())
    }
}

impl<'de> ReadObject<'de> for UserInfo {
    type Out = UserInfo;
    fn entry<A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error> {
        match key {
            Key::Username => self.username = map.next_value::<MaybeText>()?.or_empty(),
            Key::Uid => self.uid = map.next_value::<MaybeText>()?.or_empty(),
            Key::Groups => self.groups = map.next_value::<Strings>()?.0,
            Key::Extra => self.extra = map.next_value::<Extra>()?.0,
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
    fn finish(self) -> UserInfo {
        self
    }
    fn not_object() -> UserInfo {
        UserInfo::default()
    }
}

/// `userInfo.extra`: every key, its strings (a non-list is empty).
struct Extra(BTreeMap<String, Vec<String>>);

impl<'de> Deserialize<'de> for Extra {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Extra, D::Error> {
        ShapeVisitor(Extra(BTreeMap::new())).deserialize(deserializer)
    }
}

impl<'de> Shape<'de> for Extra {
    type Out = Extra;
    fn other() -> Extra {
        Extra(BTreeMap::new())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Extra, A::Error> {
        let mut out = self.0;
        while let Some(key) = map.next_key::<String>()? {
            let Strings(values) = map.next_value()?;
            out.insert(key, values);
        }
        Ok(Extra(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the two-step path (a `Value` of the whole payload) decides.
    fn slow(payload: &[u8]) -> Result<(Input, Settings), String> {
        let (input, raw) = Input::from_payload(payload)?;
        Ok((input, Settings::from_value(raw)?))
    }

    /// `decode` agrees with the two-step path whenever it answers; the old
    /// object only matters for an UPDATE.
    fn agrees(payload: &[u8]) -> bool {
        let Some((mut fast, fast_settings)) = decode(payload) else {
            return false;
        };
        let (mut input, settings) = slow(payload).unwrap_or_else(|e| {
            panic!(
                "decode answered where the two-step path refuses ({e}): {}",
                String::from_utf8_lossy(payload)
            )
        });
        if input.operation != "UPDATE" {
            input.old_object = Value::Null;
            fast.old_object = Value::Null;
        }
        assert_eq!(fast, input, "{}", String::from_utf8_lossy(payload));
        assert_eq!(
            *fast_settings,
            settings,
            "{}",
            String::from_utf8_lossy(payload)
        );
        true
    }

    fn payload(request: Value, settings: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"request": request, "settings": settings})).unwrap()
    }

    #[test]
    fn every_fixture_decodes_in_one_pass_as_in_two() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut decoded = 0;
        for entry in std::fs::read_dir(&fixtures).unwrap() {
            let dir = entry.unwrap().path();
            let read = |file: &str| {
                std::fs::read_to_string(dir.join(file))
                    .ok()
                    .map(|t| serde_json::from_str::<Value>(&t).unwrap())
            };
            let Some(mut request) = read("request.json") else {
                continue;
            };
            if request.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
                request = request["request"].take();
            }
            let settings = read("settings.json").unwrap_or(json!({}));
            let bytes = payload(request, settings.clone());
            // Settings that validate_settings refuses never reach validate; the
            // two-step path names what is wrong.
            let valid = Settings::from_json(settings.to_string().as_bytes()).is_ok();
            assert_eq!(agrees(&bytes), valid, "{}", dir.display());
            decoded += usize::from(valid);
        }
        assert!(decoded > 100, "only {decoded} fixtures decoded");
    }

    /// The settings of a payload are decoded once per distinct text on an
    /// instance that serves many requests, and never reused for another text.
    #[test]
    fn settings_are_reused_only_for_the_same_text() {
        let request = json!({"uid": "1", "kind": {"group": "", "kind": "Pod"},
            "operation": "CREATE", "namespace": "a", "object": {"metadata": {"name": "p"}}});
        let eu = payload(request.clone(), json!({"aws": {"region": "eu-west-1"}}));
        let us = payload(request.clone(), json!({"aws": {"region": "us-east-1"}}));
        let region = |bytes: &[u8]| decode(bytes).and_then(|(_, s)| s.aws.region.clone());
        let (_, first) = decode(&eu).unwrap();
        let (_, again) = decode(&eu).unwrap();
        assert!(Rc::ptr_eq(&first, &again), "the same text is decoded once");
        assert_eq!(region(&us), Some("us-east-1".to_string()));
        assert_eq!(region(&eu), Some("eu-west-1".to_string()));
        // Whitespace alone makes another text: decoded again, to the same settings.
        let spaced = format!(
            r#"{{"request": {request}, "settings": {{ "aws": {{"region": "eu-west-1"}} }}}}"#
        );
        let (_, respaced) = decode(spaced.as_bytes()).unwrap();
        assert!(!Rc::ptr_eq(&first, &respaced));
        assert_eq!(*first, *respaced);
        // Settings that do not validate after valid ones: no answer, nothing stale.
        let bad = payload(
            request.clone(),
            json!({"aws": {"tokenExpirationSeconds": 1}}),
        );
        assert!(decode(&bad).is_none());
        assert!(decode(&bad).is_none());
        assert_eq!(region(&eu), Some("eu-west-1".to_string()));
        // No settings: the defaults, whatever was decoded before.
        let none = serde_json::to_vec(&json!({"request": request})).unwrap();
        assert_eq!(*decode(&none).unwrap().1, Settings::default());
    }

    #[test]
    fn unusual_payloads_agree_or_take_the_two_step_path() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        let request = json!({"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "namespace": "a", "object": pod,
            "userInfo": {"username": "u", "uid": "9", "groups": ["g", 1, null, "h"],
                "extra": {"k": ["v"], "n": 3, "m": {"x": 1}}}});
        // (payload, whether decode answers)
        let cases: Vec<(Vec<u8>, bool)> = vec![
            (payload(request.clone(), json!({})), true),
            (payload(request.clone(), Value::Null), true),
            (serde_json::to_vec(&json!({"request": request})).unwrap(), true),
            (
                payload(request.clone(), json!({"aws": {"region": "eu-west-1"}})),
                true,
            ),
            // Wrong types where strings are read: read as empty.
            (
                payload(
                    json!({"uid": 1, "kind": "Pod", "operation": ["CREATE"], "namespace": {"a": 1},
                        "object": pod, "userInfo": "alice"}),
                    json!({}),
                ),
                true,
            ),
            (
                payload(
                    json!({"kind": {"group": null, "kind": 7}, "userInfo": {"groups": "g", "extra": []}}),
                    json!({}),
                ),
                true,
            ),
            // The old object of an UPDATE is kept, of anything else dropped.
            (
                payload(
                    json!({"operation": "UPDATE", "kind": {"kind": "Pod"}, "object": pod, "oldObject": pod}),
                    json!({}),
                ),
                true,
            ),
            (
                payload(
                    json!({"operation": "DELETE", "kind": {"kind": "Pod"}, "oldObject": pod}),
                    json!({}),
                ),
                true,
            ),
            // Duplicate keys: the last wins, as in a Value.
            (
                br#"{"settings": {"aws": {"enabled": false}}, "request": {"operation": "CREATE", "operation": "UPDATE", "oldObject": {"a": 1}, "kind": {"kind": "Pod", "kind": "Deployment"}, "kind": {"group": "apps"}}, "settings": {}}"#.to_vec(),
                true,
            ),
            (
                br#"{"request": {"uid": "x"}, "request": {"uid": "y", "userInfo": {"username": "a"}, "userInfo": {"uid": "b"}}}"#.to_vec(),
                true,
            ),
            // An old object skipped for DELETE, then the operation is UPDATE after all.
            (
                br#"{"request": {"operation": "DELETE", "oldObject": {"a": 1}, "operation": "UPDATE"}}"#.to_vec(),
                false,
            ),
            // Duplicate settings fields: serde refuses them, a Value keeps the last.
            (
                br#"{"request": {}, "settings": {"lookupFailure": "reject", "lookupFailure": "admit"}}"#.to_vec(),
                false,
            ),
            // Invalid settings, a request that is not an object, no request: the two-step
            // path names the problem.
            (payload(request.clone(), json!({"nope": 1})), false),
            (payload(request.clone(), json!({"aws": {"region": "NOT A REGION"}})), false),
            (payload(json!("pod"), json!({})), false),
            (br#"{"settings": {}}"#.to_vec(), false),
            (b"[]".to_vec(), false),
            (b"null".to_vec(), false),
        ];
        for (bytes, answers) in cases {
            assert_eq!(
                agrees(&bytes),
                answers,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    /// What a `Value` refuses anywhere in the payload, the one-pass decoder
    /// refuses too, also in the parts it skips.
    #[test]
    fn skipped_parts_are_checked_as_strictly_as_a_value() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let mut bad_utf8 = br#"{"request": {"resource": "X"}, "settings": {}}"#.to_vec();
        let at = bad_utf8.iter().position(|&b| b == b'X').unwrap();
        bad_utf8[at] = 0xff;
        let cases: Vec<Vec<u8>> = vec![
            format!(r#"{{"request": {{"resource": {}}}}}"#, deep(200)).into_bytes(),
            format!(r#"{{"request": {{"dryRun": {}}}}}"#, deep(127)).into_bytes(),
            format!(r#"{{"other": {}, "request": {{}}}}"#, deep(128)).into_bytes(),
            format!(
                r#"{{"request": {{"operation": "DELETE", "oldObject": {}}}}}"#,
                deep(127)
            )
            .into_bytes(),
            format!(
                r#"{{"request": {{"userInfo": {{"extra": {{"k": {}}}}}}}}}"#,
                deep(125)
            )
            .into_bytes(),
            bad_utf8,
            br#"{"request": {"resource": "\udc80"}}"#.to_vec(),
            br#"{"request": {"options": {"\ud800x": 1}}}"#.to_vec(),
            br#"{"request": {"resource": 1e400}}"#.to_vec(),
            br#"{"request": {"resource": [1,]}}"#.to_vec(),
            br#"{"request": {}} x"#.to_vec(),
            br#"{"request": {}"#.to_vec(),
            b"\xef\xbb\xbf{\"request\": {}}".to_vec(),
        ];
        for bytes in cases {
            assert!(
                slow(&bytes).is_err(),
                "the two-step path accepts {}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(
                decode(&bytes).is_none(),
                "decode accepts {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        // Just below the limit both accept.
        let ok = format!(r#"{{"request": {{"resource": {}}}}}"#, deep(125)).into_bytes();
        assert!(agrees(&ok));
    }
}
