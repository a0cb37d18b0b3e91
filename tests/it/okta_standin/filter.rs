//! The SCIM filter expressions of the System Log's `filter` parameter: `attr op "value"` with the
//! operators `eq ne sw co ew gt ge lt le pr`, joined with `and` / `or`, `not (...)` and grouping
//! `( )`. Attribute names are case-sensitive, operators and keywords are not. As Okta does, the
//! stand-in refuses `published` in a filter and `co` on `debugContext.debugData.url` /
//! `.requestUri` (E0000031), and any expression it cannot parse (E0000053).

use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Both sides match.
    And(Box<Filter>, Box<Filter>),
    /// Either side matches.
    Or(Box<Filter>, Box<Filter>),
    /// The inner expression does not match.
    Not(Box<Filter>),
    /// The attribute is present and not null.
    Present(String),
    /// `attribute op "value"`.
    Compare(String, Op, Value),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Starts with.
    Sw,
    /// Contains.
    Co,
    /// Ends with.
    Ew,
    /// Greater than (strings compare by code point).
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

/// Why a filter is refused, as Okta's error code tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterError {
    /// E0000053: not a filter expression.
    Invalid(String),
    /// E0000031: a well-formed expression on an attribute or with an operator Okta refuses.
    Refused(String),
}

impl Filter {
    /// Parses a filter expression.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let filter = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(filter),
            Some(extra) => Err(FilterError::Invalid(format!("unexpected {extra:?}"))),
        }
    }

    /// Whether `event` matches. An attribute that walks through an array (`target.id`) matches
    /// when any element does, as in SCIM.
    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(event) && b.matches(event),
            Filter::Or(a, b) => a.matches(event) || b.matches(event),
            Filter::Not(inner) => !inner.matches(event),
            Filter::Present(attribute) => values_at(event, attribute)
                .iter()
                .any(|value| !value.is_null()),
            Filter::Compare(attribute, op, expected) => values_at(event, attribute)
                .iter()
                .any(|value| compare(value, *op, expected)),
        }
    }
}

/// Every value at a dotted attribute path, descending into arrays.
fn values_at<'a>(event: &'a Value, attribute: &str) -> Vec<&'a Value> {
    let mut current = vec![event];
    for step in attribute.split('.') {
        current = current
            .into_iter()
            .flat_map(|value| match value {
                Value::Array(items) => items.iter().filter_map(|i| i.get(step)).collect(),
                other => other.get(step).into_iter().collect::<Vec<_>>(),
            })
            .collect();
    }
    current
        .into_iter()
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .collect()
}

fn compare(value: &Value, op: Op, expected: &Value) -> bool {
    if let (Some(actual), Some(wanted)) = (value.as_str(), expected.as_str()) {
        return match op {
            Op::Eq => actual == wanted,
            Op::Ne => actual != wanted,
            Op::Sw => actual.starts_with(wanted),
            Op::Co => actual.contains(wanted),
            Op::Ew => actual.ends_with(wanted),
            Op::Gt => actual > wanted,
            Op::Ge => actual >= wanted,
            Op::Lt => actual < wanted,
            Op::Le => actual <= wanted,
        };
    }
    match op {
        Op::Eq => value == expected,
        Op::Ne => value != expected,
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Literal(Value),
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            _ if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                tokens.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '[' | ']' => {
                return Err(FilterError::Refused("the [ ] operator".into()));
            }
            '"' => {
                let rest = &text[start..];
                let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
                let literal = stream
                    .next()
                    .and_then(Result::ok)
                    .ok_or_else(|| FilterError::Invalid("an unterminated string".into()))?;
                let consumed = start + stream.byte_offset();
                while chars.peek().is_some_and(|&(i, _)| i < consumed) {
                    chars.next();
                }
                tokens.push(Token::Literal(Value::String(literal)));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || "()\"[]".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, keyword: &str) -> bool {
        let found = matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword));
        if found {
            self.at += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.factor()?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.group()?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            return self.group();
        }
        self.comparison()
    }

    fn group(&mut self) -> Result<Filter, FilterError> {
        if self.next() != Some(Token::Open) {
            return Err(FilterError::Invalid("expected (".into()));
        }
        let inner = self.or()?;
        if self.next() != Some(Token::Close) {
            return Err(FilterError::Invalid("expected )".into()));
        }
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let Some(Token::Word(attribute)) = self.next() else {
            return Err(FilterError::Invalid("expected an attribute".into()));
        };
        if attribute == "published" {
            return Err(FilterError::Refused("published in a filter".into()));
        }
        let Some(Token::Word(op)) = self.next() else {
            return Err(FilterError::Invalid(format!(
                "expected an operator after {attribute}"
            )));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present(attribute)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "sw" => Op::Sw,
            "co" => Op::Co,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(FilterError::Invalid(format!("unknown operator {other}"))),
        };
        if op == Op::Co
            && matches!(
                attribute.as_str(),
                "debugContext.debugData.url" | "debugContext.debugData.requestUri"
            )
        {
            return Err(FilterError::Refused(format!("co on {attribute}")));
        }
        Ok(Filter::Compare(attribute, op, self.literal()?))
    }

    fn literal(&mut self) -> Result<Value, FilterError> {
        match self.next() {
            Some(Token::Literal(value)) => Ok(value),
            Some(Token::Word(word)) => match word.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                _ => serde_json::from_str::<serde_json::Number>(&word)
                    .map(Value::Number)
                    .map_err(|_| FilterError::Invalid(format!("{word} is not a value"))),
            },
            other => Err(FilterError::Invalid(format!(
                "expected a value, got {other:?}"
            ))),
        }
    }
}
