//! Record headers: an ordered list of `(name, value)` pairs, as Kafka has.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// Record headers: an ordered list of `(name, value)` pairs carried with a
/// message, as Kafka's record headers are. Names are text, values bytes;
/// a name may repeat, and the order is kept.
///
/// Cheap to clone (the list is shared and copied only when a clone is
/// changed). In a frame, headers travel in a [version 3](crate::FrameVersion::V3)
/// header: see [`Codec::encode_with_headers`](crate::Codec::encode_with_headers).
///
/// # Examples
///
/// ```
/// use memq_codec::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("trace-id", "4bf92f3577b34da6");
/// headers.insert("hop", "gateway").insert("hop", "billing");
/// assert_eq!(headers.len(), 3);
/// assert_eq!(headers.get("trace-id").map(|v| &v[..]), Some(&b"4bf92f3577b34da6"[..]));
/// assert_eq!(headers.get("hop").map(|v| &v[..]), Some(&b"billing"[..]), "the last one");
/// let hops: Vec<&[u8]> = headers.get_all("hop").map(|v| &v[..]).collect();
/// assert_eq!(hops, [&b"gateway"[..], b"billing"]);
/// assert!(headers.get("missing").is_none());
///
/// let same: Headers = [("trace-id", "4bf92f3577b34da6"), ("hop", "gateway"), ("hop", "billing")].into();
/// assert_eq!(same, headers);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    entries: Arc<Vec<(String, Bytes)>>,
}

impl Headers {
    /// No headers.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memq_codec::Headers::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Headers::default()
    }

    /// Appends a header (a name that is there already is kept: names may
    /// repeat). Returns `self`, to chain.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::Headers;
    ///
    /// let mut headers = Headers::new();
    /// headers.insert("a", "1").insert("b", vec![0u8, 1]).insert("a", "2");
    /// let names: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["a", "b", "a"]);
    /// ```
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Bytes>) -> &mut Self {
        Arc::make_mut(&mut self.entries).push((name.into(), value.into()));
        self
    }

    /// The value of the last header named `name` (Kafka's `lastHeader`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::Headers;
    ///
    /// let headers: Headers = [("v", "1"), ("v", "2")].into();
    /// assert_eq!(headers.get("v").unwrap(), "2");
    /// ```
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.entries.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of the last header named `name`, as text (`None` when
    /// there is none or it is not UTF-8).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::Headers;
    ///
    /// let headers: Headers = [("user", &b"ada"[..]), ("blob", &[0xFF][..])].into();
    /// assert_eq!(headers.get_str("user"), Some("ada"));
    /// assert_eq!(headers.get_str("blob"), None);
    /// ```
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value named `name`, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::Headers;
    ///
    /// let headers: Headers = [("hop", "a"), ("x", "-"), ("hop", "b")].into();
    /// assert_eq!(headers.get_all("hop").collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Every header, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::Headers;
    ///
    /// let headers: Headers = [("a", "1"), ("b", "2")].into();
    /// let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n, &v[..])).collect();
    /// assert_eq!(pairs, [("a", &b"1"[..]), ("b", b"2")]);
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Bytes)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Removes every header named `name`; returns how many there were.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::Headers;
    ///
    /// let mut headers: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into();
    /// assert_eq!(headers.remove("a"), 2);
    /// assert_eq!(headers.len(), 1);
    /// ```
    pub fn remove(&mut self, name: &str) -> usize {
        let count = self.get_all(name).count();
        if count > 0 {
            Arc::make_mut(&mut self.entries).retain(|(n, _)| n != name);
        }
        count
    }

    /// How many headers there are (repeated names counted each time).
    ///
    /// # Examples
    ///
    /// ```
    /// let headers: memq_codec::Headers = [("a", "1"), ("a", "2")].into();
    /// assert_eq!(headers.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memq_codec::Headers::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes the headers take in a frame (see the
    /// [crate docs](crate#frame-format)).
    pub(crate) fn encoded_len(&self) -> usize {
        4 + self
            .entries
            .iter()
            .map(|(n, v)| 2 + n.len() + 4 + v.len())
            .sum::<usize>()
    }
}

impl fmt::Debug for Headers {
    /// Names and value lengths (values may be binary, or secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(n, v)| (n, v.len())))
            .finish()
    }
}

impl<N: Into<String>, V: Into<Bytes>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers {
            entries: Arc::new(iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect()),
        }
    }
}

impl<N: Into<String>, V: Into<Bytes>> From<Vec<(N, V)>> for Headers {
    fn from(pairs: Vec<(N, V)>) -> Self {
        pairs.into_iter().collect()
    }
}

impl<N: Into<String>, V: Into<Bytes>, const K: usize> From<[(N, V); K]> for Headers {
    fn from(pairs: [(N, V); K]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<N: Into<String>, V: Into<Bytes>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        Arc::make_mut(&mut self.entries).extend(iter.into_iter().map(|(n, v)| (n.into(), v.into())));
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a Bytes);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Bytes)>,
        fn(&'a (String, Bytes)) -> (&'a str, &'a Bytes),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }
}
