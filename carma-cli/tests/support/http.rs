//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream` (keep-alive, `Content-Length`
//! and chunked answers) and a handle on a running `carma serve`, for the serve tests and the load
//! benchmark. Hand-rolled rather than a client crate: the tests need to send half a body, a
//! chunked body and exact bytes, and to see the server's answer exactly as sent.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for an answer before failing (never reached when all is well).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive connection.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connect to `addr`.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// The underlying stream, to write raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    /// Send a request with a `Content-Length` body and read the answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send_head(method, path, headers, Some(body.len()))?;
        self.stream().write_all(body)?;
        self.read_response()
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&mut self, path: &str, body: &[u8]) -> io::Result<Response> {
        self.request("POST", path, &[("Content-Type", "application/json")], body)
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// Write the request line and the headers (with `Content-Length` when given).
    pub fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: Option<usize>,
    ) -> io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (n, v) in headers {
            head += &format!("{n}: {v}\r\n");
        }
        if let Some(n) = content_length {
            head += &format!("Content-Length: {n}\r\n");
        }
        head += "\r\n";
        self.stream().write_all(head.as_bytes())
    }

    /// Read one answer.
    pub fn read_response(&mut self) -> io::Result<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before an answer",
            ));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, line.clone()))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if r.header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, line.clone()))?;
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                r.body.extend_from_slice(&chunk[..n]);
            }
        } else {
            let n: usize = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            r.body.resize(n, 0);
            self.reader.read_exact(&mut r.body)?;
        }
        Ok(r)
    }
}

/// A running `carma serve`, killed when dropped if it is still running.
pub struct Server {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Everything it wrote to standard error so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Start `carma` (the binary at `bin`) as `carma serve --model MODEL --addr 127.0.0.1:0
    /// ARGS...` and read the bound address from its first line of standard output.
    pub fn start(bin: &Path, model: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .args(["serve", "--model"])
            .arg(model)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start carma serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read the address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "carma serve did not print its address (got {line:?}); stderr: {}",
                    stderr.lock().unwrap()
                )
            });
        // Keep reading standard output so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Server {
            child,
            addr,
            stderr,
        }
    }

    /// A new connection.
    pub fn client(&self) -> Client {
        Client::connect(self.addr).expect("connect to carma serve")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (`TERM`, `INT`, `HUP`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -s {signal} failed");
    }

    /// Wait for the process to exit (at most [`IO_TIMEOUT`]).
    pub fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait for carma serve") {
                return s;
            }
            assert!(Instant::now() < until, "carma serve did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Standard error so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
