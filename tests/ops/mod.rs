//! Helpers of the operations tests (tests/metrics.rs, tests/drain.rs): the real
//! `callmood serve` process on loopback ports, stopped with a signal or killed when the
//! test ends, and real speech sent into it as RTP inside `StreamCall`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callmood::core::rtp;
use callmood::proto::{self, stream_call_request::Request, StreamCallRequest};

/// A free loopback port (bound and released; the race with other processes is small).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped (a failed test leaves nothing running).
pub struct Proc {
    pub child: Child,
    /// Its stderr so far (read by a thread).
    pub stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `cmd` with stderr collected.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("process starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self { child, stderr }
    }

    /// Sends a signal with `kill` (SIGTERM: "TERM").
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits for the process to exit, at most `limit`; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `callmood serve` of this build on loopback ports, started from the repository
/// root (the shipped models); returns once it serves gRPC.
pub struct Server {
    pub proc: Proc,
    pub grpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
}

impl Server {
    /// Starts it with `extra` flags; `with_metrics` adds `--metrics-addr`.
    pub fn start(with_metrics: bool, extra: &[&str]) -> Self {
        let grpc: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let metrics: Option<SocketAddr> =
            with_metrics.then(|| ([127, 0, 0, 1], free_port()).into());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callmood"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--addr", &grpc.to_string()])
            .args([
                "--rtp-addr",
                "127.0.0.1",
                "--workers",
                "1",
                "--threads",
                "2",
            ])
            .args(["--max-queue-wait", "600"])
            .args(extra);
        if let Some(m) = metrics {
            cmd.args(["--metrics-addr", &m.to_string()]);
        }
        let mut proc = Proc::spawn(cmd);
        let end = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(grpc).is_err() {
            if let Some(st) = proc.child.try_wait().unwrap() {
                panic!("callmood serve exited ({st}):\n{}", proc.stderr());
            }
            assert!(
                Instant::now() < end,
                "callmood serve did not start:\n{}",
                proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            proc,
            grpc,
            metrics,
        }
    }
}

/// A plain HTTP/1.0 GET on loopback: (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

/// The config message of a one-channel μ-law call whose audio comes as RTP.
pub fn rtp_call_config(call_id: &str) -> StreamCallRequest {
    StreamCallRequest {
        request: Some(Request::Config(proto::CallConfig {
            call_id: call_id.into(),
            channels: vec![proto::ChannelConfig {
                channel_id: 0,
                role: proto::Role::Caller as i32,
                encoding: proto::Encoding::Mulaw as i32,
                ..Default::default()
            }],
            ..Default::default()
        })),
    }
}

/// 8 kHz μ-law bytes as 20 ms RTP packets inside `StreamCall` messages; every
/// `lose_every`-th packet (0: none) is left out, as a lossy network would.
pub fn rtp_messages(bytes: &[u8], lose_every: usize) -> Vec<StreamCallRequest> {
    bytes
        .chunks(160)
        .enumerate()
        .filter(|(i, _)| lose_every == 0 || i % lose_every != lose_every - 1)
        .map(|(i, chunk)| StreamCallRequest {
            request: Some(Request::Rtp(proto::RtpPacket {
                channel_id: 0,
                packet: rtp::build(i == 0, 0, i as u16, (i * 160) as u32, 4242, chunk),
            })),
        })
        .collect()
}
