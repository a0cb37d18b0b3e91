//! The examples that need a running server: the ```` ```console,ignore ```` blocks (trycmd skips
//! them). A document's blocks run in order against one server, started by its first command,
//! `$ factorwatch serve`, in a folder laid out as for the offline examples. Its configuration is
//! [`CONFIG`]: the default file sink and `soc-webhook`, a webhook whose destination (this test)
//! answers every alert with 422, so that alerts are dead-lettered.
//!
//! Commands are split on spaces; `NAME=value` words before the program set variables. A command
//! is `factorwatch ...`, run with the server's environment once the backlog is empty (every batch
//! detected, every alert delivered or dead-lettered), or `curl -s URL`, whose answer's body is
//! the output. What varies is shown as in a default setup: the hook on `127.0.0.1:8080`, the admin
//! API on `127.0.0.1:8081`, the operational listener on `127.0.0.1:8082`, the refusing webhook on
//! `127.0.0.1:57317`, every time as `2026-11-27T21:34:15.647...Z`; `[..]` and `...` elide as in
//! the offline examples.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::layout;
use crate::markdown::{self, Block};

/// The info string of a block this test runs.
const SERVER_BLOCK: &str = "console,ignore";
/// The secret the server accepts and `simulate` sends.
const SECRET: &str = "docs-example-secret";
/// The server's configuration; `{webhook}` is the refusing destination's address.
const CONFIG: &str = r#"[[sinks]]
name = "alerts-file"
type = "file"
path = "./data/alerts.jsonl"

[[sinks]]
name = "soc-webhook"
type = "webhook"
url = "http://{webhook}/alerts"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#;
/// What the refusing destination answers.
const REFUSAL: &str = "HTTP/1.1 422 Unprocessable Entity\r\ncontent-type: application/json\r\n\
                       content-length: 26\r\nconnection: close\r\n\r\n{\"error\":\"unknown schema\"}";
/// The time every timestamp in the output is shown as.
const SHOWN_TIME: &str = "2026-11-27T21:34:15.647473";
/// How long the server may take to start, or the backlog to empty.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn server_examples() {
    let overwrite = std::env::var("TRYCMD").is_ok_and(|mode| mode == "overwrite");
    let mut failures = Vec::new();
    for doc in markdown::documents() {
        let blocks: Vec<Block> = markdown::blocks(&doc)
            .into_iter()
            .filter(|block| block.info == SERVER_BLOCK)
            .collect();
        if blocks.is_empty() {
            continue;
        }
        let steps = Scenario::start(&doc).run(&blocks);
        let wrong: Vec<&Step> = steps.iter().filter(|step| !step.matches()).collect();
        if overwrite {
            rewrite(&doc, &wrong);
        } else {
            failures.extend(wrong.iter().map(|step| step.report(&doc)));
        }
    }
    assert!(
        failures.is_empty(),
        "examples that no longer show what the binary does (TRYCMD=overwrite cargo test --test \
         docs writes its output into the documents):\n\n{}",
        failures.join("\n")
    );
}

/// One command of a block, with the output the document shows and the one the binary gave.
struct Step {
    command: String,
    /// The document's lines holding the output (0-based, end excluded).
    lines: std::ops::Range<usize>,
    expected: String,
    actual: String,
}

impl Step {
    fn matches(&self) -> bool {
        markdown::matches(&self.expected, &self.actual)
    }

    fn report(&self, doc: &Path) -> String {
        format!(
            "{}:{}: $ {}\n--- the document shows:\n{}\n+++ the binary printed:\n{}\n",
            doc.display(),
            self.lines.start,
            self.command,
            self.expected,
            self.actual
        )
    }
}

/// Splits each block into its commands and their expected output.
fn steps_of(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (offset, line) in block.body.lines().enumerate() {
        let at = block.line + offset; // 0-based index of this line in the document
        match (line.strip_prefix("$ "), steps.last_mut()) {
            (Some(command), _) => steps.push(Step {
                command: command.to_owned(),
                lines: at + 1..at + 1,
                expected: String::new(),
                actual: String::new(),
            }),
            (None, Some(step)) => {
                step.expected.push_str(line);
                step.expected.push('\n');
                step.lines.end = at + 1;
            }
            (None, None) => panic!(
                "{}:{}: a server example starts with a `$ ` command",
                block.doc.display(),
                at + 1
            ),
        }
    }
    steps
}

/// Writes each step's output into the document in place of what it showed.
fn rewrite(doc: &Path, steps: &[&Step]) {
    let text = std::fs::read_to_string(doc).expect("the document is readable");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for step in steps.iter().rev() {
        let output = step.actual.lines().map(str::to_owned);
        lines.splice(step.lines.clone(), output);
    }
    std::fs::write(doc, lines.join("\n") + "\n").expect("the document is writable");
}

/// A server for one document, the folder it runs in and the addresses shown otherwise.
struct Scenario {
    dir: PathBuf,
    env: Vec<(String, String)>,
    /// (actual, shown) pairs of addresses.
    addresses: Vec<(String, String)>,
    /// The operational listener (`/readyz` with the backlog).
    ops: String,
    server: Option<Child>,
}

impl Scenario {
    fn start(doc: &Path) -> Scenario {
        let stem = doc.file_stem().expect("a document has a name");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("docs-server")
            .join(stem);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("the scratch folder can be emptied");
        }
        layout::example_folder(doc, &dir);
        let webhook = refusing_destination();
        let config = dir.join("factorwatch-docs.toml");
        std::fs::write(&config, CONFIG.replace("{webhook}", &webhook)).expect("config written");
        let hook = free_address();
        let admin = free_address();
        let ops = free_address();
        let env = [
            ("FACTORWATCH_CONFIG", config.to_str().expect("a UTF-8 path")),
            ("FACTORWATCH_OKTA_SECRETS", SECRET),
            ("FACTORWATCH_SIMULATE_SECRET", SECRET),
            ("FACTORWATCH_LISTEN", &hook),
            ("FACTORWATCH_ADMIN_LISTEN", &admin),
            ("FACTORWATCH_OPS_LISTEN", &ops),
            ("FACTORWATCH_LOG_FORMAT", "text"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let addresses = vec![
            (hook, "127.0.0.1:8080".to_owned()),
            (admin, "127.0.0.1:8081".to_owned()),
            (ops.clone(), "127.0.0.1:8082".to_owned()),
            (webhook, "127.0.0.1:57317".to_owned()),
        ];
        Scenario {
            dir,
            env,
            addresses,
            ops,
            server: None,
        }
    }

    fn run(mut self, blocks: &[Block]) -> Vec<Step> {
        let mut steps: Vec<Step> = blocks.iter().flat_map(steps_of).collect();
        for step in &mut steps {
            let printed = self.execute(&step.command);
            step.actual = self.normalise(&printed);
        }
        steps
    }

    /// Runs one command and returns what it printed.
    fn execute(&mut self, command: &str) -> String {
        let command = self.actual_addresses(command);
        let mut words = command.split_whitespace();
        let mut env = Vec::new();
        let program = loop {
            let word = words.next().expect("a command names a program");
            match word.split_once('=') {
                Some((name, value)) => env.push((name.to_owned(), value.to_owned())),
                None => break word,
            }
        };
        let args: Vec<&str> = words.collect();
        match (program, args.as_slice()) {
            ("factorwatch", ["serve"]) => self.serve(&env),
            ("factorwatch", _) => {
                self.wait_for_empty_backlog();
                self.factorwatch(&args, &env)
            }
            ("curl", ["-s", url]) => get(url),
            _ => panic!("a server example cannot run `{command}`"),
        }
    }

    /// Starts the server and returns its log (stderr) up to the line saying it is ready.
    fn serve(&mut self, env: &[(String, String)]) -> String {
        assert!(self.server.is_none(), "a document starts one server");
        let mut child = self
            .command(&["serve"], env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("factorwatch serve starts");
        let log = child.stderr.take().expect("stderr is piped");
        self.server = Some(child);
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end: a server whose stderr is closed cannot log, and stops detecting.
            for line in BufReader::new(log).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let mut log = String::new();
        while !log.contains("factorwatch ready") {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = received
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the server did not get ready; its log:\n{log}"));
            log.push_str(&line);
            log.push('\n');
        }
        log
    }

    fn factorwatch(&self, args: &[&str], env: &[(String, String)]) -> String {
        let output = self.command(args, env).output().expect("factorwatch runs");
        let mut printed = match output.status.code() {
            Some(0) => String::new(),
            code => format!("? {}\n", code.unwrap_or(-1)),
        };
        printed.push_str(&String::from_utf8_lossy(&output.stdout));
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
        printed
    }

    fn command(&self, args: &[&str], env: &[(String, String)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_factorwatch"));
        command
            .args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().chain(env).map(|(k, v)| (k, v)));
        command
    }

    /// Waits until every stored batch is detected and every alert delivered or dead-lettered.
    fn wait_for_empty_backlog(&self) {
        let url = format!("http://{}/readyz", self.ops);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let readiness = get(&url);
            if readiness.contains("\"backlog_bytes\":0,") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the backlog did not empty: {readiness}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn actual_addresses(&self, text: &str) -> String {
        self.addresses
            .iter()
            .fold(text.to_owned(), |text, (actual, shown)| {
                text.replace(shown, actual)
            })
    }

    /// The output with the addresses and times shown as in a default setup.
    fn normalise(&self, output: &str) -> String {
        let text = self
            .addresses
            .iter()
            .fold(output.to_owned(), |text, (actual, shown)| {
                text.replace(actual, shown)
            });
        shown_times(&text)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// Replaces every RFC 3339 UTC time (`2026-12-03T20:19:17.753777Z`) with [`SHOWN_TIME`], cut or
/// padded with `0` to the same length.
fn shown_times(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(next) = rest.chars().next() {
        if let Some(len) = time_length(rest) {
            out.extend(
                SHOWN_TIME
                    .chars()
                    .chain(std::iter::repeat('0'))
                    .take(len - 1),
            );
            out.push('Z');
            rest = &rest[len..];
        } else {
            out.push(next);
            rest = &rest[next.len_utf8()..];
        }
    }
    out
}

/// The length of the time at the start of `text` (`YYYY-MM-DDTHH:MM:SS[.f...]Z`), if one is.
fn time_length(text: &str) -> Option<usize> {
    let shape = "0000-00-00T00:00:00";
    let bytes = text.as_bytes();
    let fixed = shape.bytes().enumerate().all(|(i, want)| {
        bytes.get(i).is_some_and(|&got| {
            if want == b'0' {
                got.is_ascii_digit()
            } else {
                got == want
            }
        })
    });
    if !fixed {
        return None;
    }
    let mut end = shape.len();
    if bytes.get(end) == Some(&b'.') {
        end += 1;
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    (bytes.get(end) == Some(&b'Z')).then_some(end + 1)
}

/// A loopback address nothing listens on, for the server to bind.
fn free_address() -> String {
    format!("127.0.0.1:{}", crate::ports::free_port())
}

/// Starts a destination that answers every request with [`REFUSAL`], and returns its address.
fn refusing_destination() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("bound").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = read_request(&mut stream);
            let _ = stream.write_all(REFUSAL.as_bytes());
        }
    });
    address
}

/// Reads one HTTP/1.1 request: its head, then `content-length` bytes of body.
fn read_request(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    reader.read_exact(&mut vec![0; length])
}

/// The body of a GET to `url` (`http://HOST:PORT/PATH`).
fn get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host).expect("the server answers");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .expect("the request is sent");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the answer is read");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    format!("{body}\n")
}
