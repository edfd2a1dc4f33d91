//! Tags filters: the predicate a subscriber sends with its subscribe request (`tf`) so it
//! receives only the publications whose tags match.
//!
//! A [`gyre_protocol::FilterNode`] tree is checked once, at subscribe, and compiled into a
//! [`TagsFilter`]: operators resolved, `in`/`nin` lists and numeric operands prepared.
//! Matching then walks the compiled tree against a publication's tags without allocating.
//!
//! The operators are upstream's: leaves compare one tag (`eq`, `neq`, `in`, `nin`, `ex`,
//! `nex`, `sw`, `ew`, `ct`, and the decimal comparisons `lt`, `lte`, `gt`, `gte`); inner
//! nodes combine children (`and`, `or` with at least one child, `not` with exactly one). A
//! tree that breaks a rule is refused with error 107 (bad request), as upstream does.
//! Upstream sets no size limit of its own (its decoders bound the nesting); Gyre also refuses
//! trees deeper than [`MAX_DEPTH`] or larger than [`MAX_NODES`], so one subscriber cannot
//! make fan-out expensive for everyone.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use gyre_protocol::FilterNode;
use parking_lot::Mutex;
use prost::Message;

/// Deepest nesting accepted (the root is at depth 1).
pub const MAX_DEPTH: usize = 32;

/// Most nodes (leaves and inner nodes) accepted in one tree.
pub const MAX_NODES: usize = 256;

/// Why a filter tree was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `op` is not "", "and", "or" or "not".
    #[error("unknown filter operation {0:?}")]
    UnknownOp(String),
    /// `cmp` of a leaf is missing or unknown.
    #[error("unknown comparison {0:?}")]
    UnknownCmp(String),
    /// A leaf's operands do not fit its comparison (missing `val`, `vals` where none belong...).
    #[error("comparison {0:?}: {1}")]
    Operands(String, &'static str),
    /// A leaf without a key (only `ex`/`nex` may omit it).
    #[error("comparison {0:?} needs a key")]
    MissingKey(String),
    /// `and`/`or` without children, or `not` without exactly one.
    #[error("operation {0:?}: wrong number of children")]
    Children(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("filter nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_NODES`] nodes.
    #[error("filter has more than {MAX_NODES} nodes")]
    TooLarge,
}

/// A checked, compiled tags filter.
#[derive(Debug, Clone, PartialEq)]
pub struct TagsFilter {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Leaf { key: String, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Eq(String),
    Neq(String),
    In(Vec<String>),
    Nin(Vec<String>),
    Exists,
    NotExists,
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    /// A decimal comparison: true when the tag's value compares to the operand with one of
    /// the accepted orderings. `None` operand: it is not a number, nothing matches.
    Number {
        operand: Option<String>,
        accept: [Option<Ordering>; 2],
    },
}

impl TagsFilter {
    /// Checks a filter tree and compiles it.
    pub fn compile(tree: &FilterNode) -> Result<Self, FilterError> {
        let mut nodes = 0;
        let root = compile(tree, 1, &mut nodes)?;
        Ok(Self { root })
    }

    /// Whether a publication with these tags passes the filter.
    pub fn matches(&self, tags: &HashMap<String, String>) -> bool {
        self.root.matches(tags)
    }
}

/// Identical filters, shared: subscribers that send the same tree hold the same
/// [`TagsFilter`], so fan-out evaluates each distinct filter once per publication (see
/// [`Verdicts`]). Entries go with their last subscriber.
#[derive(Debug, Default)]
pub struct FilterInterner {
    inner: Mutex<Interned>,
}

#[derive(Debug, Default)]
struct Interned {
    /// By the tree's protobuf encoding (the same tree always encodes the same).
    filters: HashMap<Vec<u8>, Weak<TagsFilter>>,
    /// Size at which dead entries are swept next.
    sweep_at: usize,
}

impl FilterInterner {
    /// The shared compiled filter for `tree`, compiling it when no live subscriber has it.
    pub fn intern(&self, tree: &FilterNode) -> Result<Arc<TagsFilter>, FilterError> {
        let key = tree.encode_to_vec();
        let mut inner = self.inner.lock();
        if let Some(filter) = inner.filters.get(&key).and_then(Weak::upgrade) {
            return Ok(filter);
        }
        let filter = Arc::new(TagsFilter::compile(tree)?);
        if inner.filters.len() >= inner.sweep_at {
            inner.filters.retain(|_, f| f.strong_count() > 0);
            inner.sweep_at = (inner.filters.len() * 2).max(64);
        }
        inner.filters.insert(key, Arc::downgrade(&filter));
        Ok(filter)
    }

    /// Distinct filters held by live subscribers.
    pub fn live(&self) -> usize {
        let inner = self.inner.lock();
        inner
            .filters
            .values()
            .filter(|f| f.strong_count() > 0)
            .count()
    }
}

/// The filter of a subscribe request: none when `tf` is absent; error 107 (bad request, as
/// upstream) when the namespace does not allow tags filters or the tree is malformed.
pub(crate) fn from_request(
    filters: &FilterInterner,
    tree: Option<&FilterNode>,
    allowed: bool,
) -> Result<Option<Arc<TagsFilter>>, gyre_protocol::ErrorCode> {
    let Some(tree) = tree else {
        return Ok(None);
    };
    if !allowed {
        tracing::debug!("tags filter sent where allow_tags_filter is off");
        return Err(gyre_protocol::ErrorCode::BadRequest);
    }
    match filters.intern(tree) {
        Ok(filter) => Ok(Some(filter)),
        Err(err) => {
            tracing::debug!("invalid tags filter: {err}");
            Err(gyre_protocol::ErrorCode::BadRequest)
        }
    }
}

/// How many distinct filters one publication's verdicts are remembered for.
const VERDICTS: usize = 16;

/// The verdicts of the filters met while delivering one publication, so subscribers sharing a
/// filter (see [`FilterInterner`]) cost one evaluation. Lives on the stack for one
/// publication; filters are told apart by identity, which holds while their subscribers are.
#[derive(Debug)]
pub struct Verdicts {
    seen: [(usize, bool); VERDICTS],
    len: usize,
}

impl Default for Verdicts {
    fn default() -> Self {
        Self {
            seen: [(0, false); VERDICTS],
            len: 0,
        }
    }
}

impl Verdicts {
    /// Whether `filter` lets a publication with `tags` through (the same publication for
    /// every call on one `Verdicts`).
    pub fn passes(&mut self, filter: &Arc<TagsFilter>, tags: &HashMap<String, String>) -> bool {
        let id = Arc::as_ptr(filter) as usize;
        if let Some((_, verdict)) = self.seen[..self.len].iter().find(|(f, _)| *f == id) {
            return *verdict;
        }
        let verdict = filter.matches(tags);
        if self.len < VERDICTS {
            self.seen[self.len] = (id, verdict);
            self.len += 1;
        }
        verdict
    }
}

fn compile(tree: &FilterNode, depth: usize, nodes: &mut usize) -> Result<Node, FilterError> {
    if depth > MAX_DEPTH {
        return Err(FilterError::TooDeep);
    }
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(FilterError::TooLarge);
    }
    let children = |nodes: &mut usize| {
        tree.nodes
            .iter()
            .map(|child| compile(child, depth + 1, nodes))
            .collect::<Result<Vec<_>, _>>()
    };
    match tree.op.as_str() {
        "" => leaf(tree),
        "and" | "or" if tree.nodes.is_empty() => Err(FilterError::Children(tree.op.clone())),
        "and" => Ok(Node::And(children(nodes)?)),
        "or" => Ok(Node::Or(children(nodes)?)),
        "not" => match tree.nodes.as_slice() {
            [child] => Ok(Node::Not(Box::new(compile(child, depth + 1, nodes)?))),
            _ => Err(FilterError::Children(tree.op.clone())),
        },
        other => Err(FilterError::UnknownOp(other.to_owned())),
    }
}

/// Which operands a comparison takes.
enum Operands {
    One,
    Many,
    None,
}

fn leaf(tree: &FilterNode) -> Result<Node, FilterError> {
    let cmp = tree.cmp.as_str();
    let operands = match cmp {
        "eq" | "neq" | "sw" | "ew" | "ct" | "lt" | "lte" | "gt" | "gte" => Operands::One,
        "in" | "nin" => Operands::Many,
        "ex" | "nex" => Operands::None,
        _ => return Err(FilterError::UnknownCmp(cmp.to_owned())),
    };
    let bad = |why| Err(FilterError::Operands(cmp.to_owned(), why));
    match operands {
        Operands::One if tree.val.is_empty() => return bad("needs val"),
        Operands::One if !tree.vals.is_empty() => return bad("takes no vals"),
        Operands::Many if tree.vals.is_empty() => return bad("needs vals"),
        Operands::Many if !tree.val.is_empty() => return bad("takes no val"),
        Operands::None if !tree.val.is_empty() || !tree.vals.is_empty() => {
            return bad("takes no val or vals");
        }
        _ => {}
    }
    if tree.key.is_empty() && !matches!(operands, Operands::None) {
        return Err(FilterError::MissingKey(cmp.to_owned()));
    }
    let val = || tree.val.clone();
    let number = |accept| Test::Number {
        operand: decimal(&tree.val).is_some().then(val),
        accept,
    };
    let test = match cmp {
        "eq" => Test::Eq(val()),
        "neq" => Test::Neq(val()),
        "in" => Test::In(tree.vals.clone()),
        "nin" => Test::Nin(tree.vals.clone()),
        "ex" => Test::Exists,
        "nex" => Test::NotExists,
        "sw" => Test::StartsWith(val()),
        "ew" => Test::EndsWith(val()),
        "ct" => Test::Contains(val()),
        "lt" => number([Some(Ordering::Less), None]),
        "lte" => number([Some(Ordering::Less), Some(Ordering::Equal)]),
        "gt" => number([Some(Ordering::Greater), None]),
        _ => number([Some(Ordering::Greater), Some(Ordering::Equal)]),
    };
    Ok(Node::Leaf {
        key: tree.key.clone(),
        test,
    })
}

impl Node {
    fn matches(&self, tags: &HashMap<String, String>) -> bool {
        match self {
            Node::And(children) => children.iter().all(|c| c.matches(tags)),
            Node::Or(children) => children.iter().any(|c| c.matches(tags)),
            Node::Not(child) => !child.matches(tags),
            Node::Leaf { key, test } => {
                let value = tags.get(key.as_str()).map(String::as_str);
                test.matches(value)
            }
        }
    }
}

impl Test {
    fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Test::Exists, v) => v.is_some(),
            (Test::NotExists, v) => v.is_none(),
            (Test::Neq(want), v) => v != Some(want.as_str()),
            // A missing tag compares as the empty string for set membership, as upstream.
            (Test::In(set), v) => set.iter().any(|s| s == v.unwrap_or("")),
            (Test::Nin(set), v) => !set.iter().any(|s| s == v.unwrap_or("")),
            (_, None) => false,
            (Test::Eq(want), Some(v)) => v == want,
            (Test::StartsWith(p), Some(v)) => v.starts_with(p.as_str()),
            (Test::EndsWith(s), Some(v)) => v.ends_with(s.as_str()),
            (Test::Contains(s), Some(v)) => v.contains(s.as_str()),
            (Test::Number { operand, accept }, Some(v)) => {
                let Some(operand) = operand.as_deref().and_then(decimal) else {
                    return false;
                };
                let Some(value) = decimal(v) else {
                    return false;
                };
                let order = compare(value, operand);
                accept.contains(&Some(order))
            }
        }
    }
}

/// A decimal number as written: sign, integer digits without leading zeros, fraction digits
/// without trailing zeros (borrowed from the text, so comparing allocates nothing).
#[derive(Debug, Clone, Copy)]
struct Decimal<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
}

/// Parses `[+-]digits[.digits]` (at least one digit on either side of the point).
fn decimal(text: &str) -> Option<Decimal<'_>> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    // Zero has no sign.
    let negative = negative && !(int.is_empty() && frac.is_empty());
    Some(Decimal {
        negative,
        int,
        frac,
    })
}

fn compare(a: Decimal<'_>, b: Decimal<'_>) -> Ordering {
    match (a.negative, b.negative) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (negative, _) => {
            let magnitude = a
                .int
                .len()
                .cmp(&b.int.len())
                .then_with(|| a.int.cmp(b.int))
                .then_with(|| a.frac.cmp(b.frac));
            if negative {
                magnitude.reverse()
            } else {
                magnitude
            }
        }
    }
}

#[cfg(test)]
mod tests;
