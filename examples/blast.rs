//! Sends the frames of a pcap file out of one interface as fast as possible, or at a set rate:
//! the sender for `scripts/live-bench.sh`. One `tcpreplay --topspeed` stops near 200k packets/s
//! on a 2-core machine, too slow to find where `flowaudit sniff` starts dropping.
//!
//! ```sh
//! cargo build --release --examples
//! target/release/examples/blast -i vB capture.pcap [--pps N] [--loops N] [--seconds S]
//! ```
//!
//! Linux only, needs CAP_NET_RAW. The whole file is read into memory first so that disk and
//! parsing cost nothing while sending. The last lines on stdout are machine-readable:
//!
//! ```text
//! sent 10294784 packets in 20.000 s: 514739 packets/s
//! retries 0 errors 0 skipped 0 mechanism tx-ring
//! ```
//!
//! `sent` counts only frames the kernel accepted. `retries` counts sends the kernel refused for
//! lack of room (ENOBUFS, EAGAIN); those frames were sent again, so they are in `sent` once.
//! `errors` counts frames the kernel rejected for good, `skipped` frames never offered to it
//! (shorter than an Ethernet header, or longer than the interface's MTU allows).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

#[derive(Parser)]
#[command(about = "Send a pcap file's frames out of an interface as fast as possible")]
struct Args {
    /// Interface to send on.
    #[arg(short, long)]
    interface: String,
    /// Classic pcap file with Ethernet frames (pcapng is not read).
    file: PathBuf,
    /// Target rate in packets/s. Default: as fast as possible.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pps: Option<u64>,
    /// Send the file this many times; 0 repeats it until --seconds.
    #[arg(long, default_value_t = 1)]
    loops: u64,
    /// Stop after this many seconds, even if loops remain.
    #[arg(long)]
    seconds: Option<f64>,
    /// Frames handed to the kernel per system call (also the size of the TX ring).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65536))]
    batch: u32,
    /// Send mechanism: auto tries the TX ring and falls back to sendmmsg.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Auto,
    TxRing,
    Sendmmsg,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("blast: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    if args.loops == 0 && args.seconds.is_none() {
        return Err("--loops 0 repeats forever: give --seconds too".into());
    }
    let deadline = args
        .seconds
        .map(Duration::try_from_secs_f64)
        .transpose()
        .map_err(|e| format!("--seconds: {e}"))?;
    let path = args.file.display().to_string();
    let cap = Pcap::load(&args.file).map_err(|e| format!("{path}: {e}"))?;
    let fd = packet_socket(&args.interface)?;
    let mtu = interface_mtu(&fd, &args.interface)?;
    // The kernel refuses frames shorter than the Ethernet header or longer than MTU + header
    // + one VLAN tag. In the TX ring a refused frame stops the ring, so they are left out here.
    let max_len = mtu + 14 + 4;
    let frames: Vec<&[u8]> = cap
        .frames()
        .filter(|f| (14..=max_len).contains(&f.len()))
        .collect();
    let skipped = cap.count() - frames.len();
    if frames.is_empty() {
        return Err(format!(
            "{path}: no frame fits the interface (MTU {mtu}): nothing to send"
        ));
    }
    let longest = frames.iter().map(|f| f.len()).max().unwrap_or(0);
    let batch = args.batch as usize;
    let mut sender: Box<dyn Sender> = match args.mode {
        Mode::Sendmmsg => Box::new(Mmsg::new(fd, batch)),
        Mode::TxRing => Box::new(TxRing::new(fd, batch, longest)?),
        // The TX ring saves the per-frame system call work of sendmmsg; sendmmsg works on any
        // kernel. A socket that has a TX ring sends only through it, hence a fresh socket.
        Mode::Auto => match TxRing::new(fd, batch, longest) {
            Ok(r) => Box::new(r),
            Err(e) => {
                eprintln!("blast: {e}; falling back to sendmmsg");
                Box::new(Mmsg::new(packet_socket(&args.interface)?, batch))
            }
        },
    };
    eprintln!(
        "blast: {} frames ({} skipped) from {path}, sending on {} (MTU {mtu}) with {}",
        frames.len(),
        skipped,
        args.interface,
        sender.name()
    );

    // The default 50 us timer slack would make every pacing sleep overshoot by that much.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
    }
    let total = (args.loops > 0).then(|| args.loops.saturating_mul(frames.len() as u64));
    // Paced runs send in bursts of about 100 us worth of packets: sleeping once per packet
    // would cost more than sending it at these rates.
    let min_burst = args
        .pps
        .map_or(1, |p| (p / 10_000).clamp(1, args.batch as u64));
    let mut stats = Stats::default();
    let mut burst: Vec<&[u8]> = Vec::with_capacity(batch);
    let mut next = 0usize;
    let mut queued = 0u64;
    let start = Instant::now();
    loop {
        let left = total.map_or(u64::MAX, |t| t - queued);
        let now = start.elapsed();
        if left == 0 || deadline.is_some_and(|d| now >= d) {
            break;
        }
        let mut n = (batch as u64).min(left);
        if let Some(pps) = args.pps {
            // Packet k is due at k / pps seconds after the start: the schedule is absolute, so
            // late wake-ups are caught up on instead of lowering the rate.
            let due = (now.as_nanos() * pps as u128 / 1_000_000_000) as u64 + 1;
            let want = min_burst.min(left);
            if due < queued + want {
                let at = (queued + want - 1) as u128 * 1_000_000_000 / pps as u128;
                let wait = Duration::from_nanos(at as u64).saturating_sub(start.elapsed());
                std::thread::sleep(wait);
                continue;
            }
            n = n.min(due - queued);
        }
        burst.clear();
        for _ in 0..n {
            burst.push(frames[next]);
            next = (next + 1) % frames.len();
        }
        sender
            .send(&burst, &mut stats)
            .map_err(|e| format!("sending on {}: {e}", args.interface))?;
        queued += n;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {} packets in {secs:.3} s: {:.0} packets/s",
        stats.sent,
        stats.sent as f64 / secs
    );
    println!(
        "retries {} errors {} skipped {skipped} mechanism {}",
        stats.retries,
        stats.errors,
        sender.name()
    );
    Ok(())
}

/// A classic pcap file held in memory, with where each frame starts.
struct Pcap {
    data: Vec<u8>,
    frames: Vec<(usize, u32)>,
}

impl Pcap {
    fn load(path: &std::path::Path) -> Result<Pcap, String> {
        let data = std::fs::read(path).map_err(|e| e.to_string())?;
        if data.len() < 24 {
            return Err("too short for a pcap file header".into());
        }
        let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
        // The timestamp resolution does not matter: frames are sent back to back, not at their
        // recorded times.
        let big_endian = match magic {
            0xa1b2_c3d4 | 0xa1b2_3c4d => false,
            0xd4c3_b2a1 | 0x4d3c_b2a1 => true,
            0x0a0d_0d0a => {
                return Err(
                    "pcapng is not supported: convert it with `editcap -F pcap IN OUT`".into(),
                )
            }
            _ => return Err(format!("not a pcap file (magic number {magic:#010x})")),
        };
        let u32_at = |at: usize| {
            let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        // The upper bits of the link-type field may carry FCS information.
        let link = u32_at(20) & 0xffff;
        if link != 1 {
            return Err(format!(
                "link type {link} is not Ethernet (1): a raw packet socket would send these frames malformed"
            ));
        }
        let mut frames = Vec::new();
        let mut at = 24;
        while at < data.len() {
            if data.len() - at < 16 {
                eprintln!("blast: warning: ignoring a partial record header at byte {at}");
                break;
            }
            let len = u32_at(at + 8);
            if len > 256 * 1024 {
                return Err(format!(
                    "record at byte {at} claims {len} bytes: the file is damaged"
                ));
            }
            if data.len() - at - 16 < len as usize {
                eprintln!("blast: warning: ignoring a truncated last record at byte {at}");
                break;
            }
            frames.push((at + 16, len));
            at += 16 + len as usize;
        }
        Ok(Pcap { data, frames })
    }

    fn count(&self) -> usize {
        self.frames.len()
    }

    fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.frames
            .iter()
            .map(|&(at, len)| &self.data[at..at + len as usize])
    }
}

#[derive(Default)]
struct Stats {
    sent: u64,
    retries: u64,
    errors: u64,
}

trait Sender {
    /// Sends every frame and returns when the kernel has accepted (or rejected) all of them.
    fn send(&mut self, frames: &[&[u8]], stats: &mut Stats) -> io::Result<()>;
    fn name(&self) -> &'static str;
}

/// Waits after the kernel had no room, so that the softirq work that frees it (run on this CPU
/// for a veth pair) can make progress.
fn back_off(stats: &mut Stats) {
    stats.retries += 1;
    std::thread::yield_now();
}

/// A raw packet socket bound to `iface`, sending only: protocol 0 means it receives nothing.
fn packet_socket(iface: &str) -> Result<OwnedFd, String> {
    let name = std::ffi::CString::new(iface).map_err(|_| format!("bad interface {iface:?}"))?;
    // SAFETY: plain system calls; the new descriptor is owned right away.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(format!("{iface}: no such interface"));
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(format!(
                "cannot open a packet socket: {} (needs root or CAP_NET_RAW)",
                io::Error::last_os_error()
            ));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        let r = libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        if r != 0 {
            return Err(format!("{iface}: bind: {}", io::Error::last_os_error()));
        }
        // Hands frames straight to the driver: no queueing discipline in the way, and other
        // packet sockets on the sending side do not get a copy of each frame.
        let one: libc::c_int = 1;
        if setsockopt(&fd, libc::PACKET_QDISC_BYPASS, &one).is_err() {
            eprintln!("blast: PACKET_QDISC_BYPASS not available; sending through the qdisc");
        }
        Ok(fd)
    }
}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value points to a live T of the given size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn sol_socket(fd: &OwnedFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: value is a live c_int.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn interface_mtu(fd: &OwnedFd, iface: &str) -> Result<usize, String> {
    // SAFETY: ifreq is plain data; the name fits (if_nametoindex accepted it) and stays
    // NUL-terminated because the struct starts zeroed.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req
            .ifr_name
            .iter_mut()
            .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) != 0 {
            return Err(format!(
                "{iface}: cannot read the MTU: {}",
                io::Error::last_os_error()
            ));
        }
        Ok(req.ifr_ifru.ifru_mtu as usize)
    }
}

/// sendmmsg(2) straight from the file in memory: one system call per batch.
struct Mmsg {
    fd: OwnedFd,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Mmsg {
    fn new(fd: OwnedFd, batch: usize) -> Mmsg {
        Mmsg {
            fd,
            iov: Vec::with_capacity(batch),
            msgs: Vec::with_capacity(batch),
        }
    }
}

impl Sender for Mmsg {
    fn send(&mut self, frames: &[&[u8]], stats: &mut Stats) -> io::Result<()> {
        self.iov.clear();
        self.iov.extend(frames.iter().map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        }));
        self.msgs.clear();
        for iov in &mut self.iov {
            // SAFETY: msghdr is plain data; zeroed means no address and no control data.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            self.msgs.push(m);
        }
        let mut done = 0;
        while done < self.msgs.len() {
            let rest = &mut self.msgs[done..];
            // SAFETY: every header points at an iovec in self.iov, which points into `frames`;
            // both outlive the call.
            let r = unsafe {
                libc::sendmmsg(self.fd.as_raw_fd(), rest.as_mut_ptr(), rest.len() as u32, 0)
            };
            if r >= 0 {
                done += r as usize;
                stats.sent += r as u64;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // The frame was dropped for lack of room (on a veth pair: the receiving
                // side's backlog was full): send the same frame again.
                Some(libc::ENOBUFS | libc::EAGAIN) => back_off(stats),
                Some(libc::EINTR) => {}
                Some(libc::EMSGSIZE | libc::EINVAL) => {
                    stats.errors += 1;
                    done += 1;
                }
                _ => return Err(e),
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "sendmmsg"
    }
}

/// A PACKET_TX_RING (TPACKET_V2): frames are written into memory shared with the kernel and
/// one send(2) transmits all of them.
struct TxRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    frame_size: usize,
    frame_nr: usize,
    /// The slot the kernel will look at next; it walks the ring in order, as we fill it.
    head: usize,
    /// Bytes of virtio_net_hdr before each frame (0 when the kernel does not take one).
    vnet: usize,
}

/// struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
const VNET_HDR_LEN: usize = 10;

/// Without PACKET_TX_HAS_OFF the kernel reads a frame's data right after the aligned header.
const TX_DATA: usize = libc::TPACKET2_HDRLEN - std::mem::size_of::<libc::sockaddr_ll>();

impl TxRing {
    fn new(fd: OwnedFd, batch: usize, longest: usize) -> Result<TxRing, String> {
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt(&fd, libc::PACKET_VERSION, &version)
            .map_err(|e| format!("TPACKET_V2 not available: {e}"))?;
        // Without a virtio_net_hdr the kernel copies only the Ethernet header out of the ring
        // and attaches the rest as page fragments, marked zero-copy; a veth pair must then copy
        // them into a freshly allocated page for every frame (skb_copy_ubufs), about a fifth of
        // the sender's CPU at minimum size. The header's hdr_len asks for the whole frame to
        // be copied into the buffer instead.
        let one: libc::c_int = 1;
        let vnet = match setsockopt(&fd, libc::PACKET_VNET_HDR, &one) {
            Ok(()) => VNET_HDR_LEN,
            Err(_) => 0,
        };
        // Slots are powers of two so that they tile the page-sized blocks exactly.
        let frame_size = (TX_DATA + vnet + longest).next_power_of_two().max(128);
        let block_size = frame_size.max(4096);
        let per_block = block_size / frame_size;
        let block_nr = batch.div_ceil(per_block);
        let frame_nr = block_nr * per_block;
        let req = libc::tpacket_req {
            tp_block_size: block_size as u32,
            tp_block_nr: block_nr as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frame_nr as u32,
        };
        setsockopt(&fd, libc::PACKET_TX_RING, &req)
            .map_err(|e| format!("cannot set up a PACKET_TX_RING: {e}"))?;
        // The socket's send buffer (skbs not yet freed) would otherwise make send(2) sleep
        // in the middle of a batch: by default it holds about 270 minimum-size frames.
        let sndbuf = (frame_nr * (frame_size + 1024)).min(i32::MAX as usize) as libc::c_int;
        sol_socket(&fd, libc::SO_SNDBUFFORCE, sndbuf)
            .or_else(|_| sol_socket(&fd, libc::SO_SNDBUF, sndbuf))
            .map_err(|e| format!("cannot size the send buffer: {e}"))?;
        let map_len = block_size * block_nr;
        // SAFETY: maps the ring just configured on this socket; unmapped in Drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(format!(
                "cannot map the TX ring: {}",
                io::Error::last_os_error()
            ));
        }
        Ok(TxRing {
            fd,
            map: map as *mut u8,
            map_len,
            frame_size,
            frame_nr,
            head: 0,
            vnet,
        })
    }

    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: the index is reduced modulo frame_nr, so the slot lies inside the mapping.
        unsafe { self.map.add((i % self.frame_nr) * self.frame_size) }
    }

    /// The kernel changes tp_status concurrently: it is the one field shared both ways.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: tp_status is the first, 4-byte aligned field of the slot's header, and the
        // mapping lives as long as self.
        unsafe { AtomicU32::from_ptr(self.slot(i) as *mut u32) }
    }

    /// Whether the kernel is done with the `n` slots from `head`.
    fn all_available(&self, n: usize) -> io::Result<bool> {
        for i in 0..n {
            match self.status(self.head + i).load(Ordering::Acquire) {
                libc::TP_STATUS_AVAILABLE => {}
                // Cannot happen with the frames filtered by length, and would stop the ring
                // for good: the kernel does not move past such a frame.
                libc::TP_STATUS_WRONG_FORMAT => {
                    return Err(io::Error::other("the kernel rejected a frame as malformed"))
                }
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

impl Sender for TxRing {
    fn send(&mut self, frames: &[&[u8]], stats: &mut Stats) -> io::Result<()> {
        for chunk in frames.chunks(self.frame_nr) {
            for (i, f) in chunk.iter().enumerate() {
                let p = self.slot(self.head + i);
                // SAFETY: every slot is ours between calls (see below), and the frame fits: the
                // slot size was chosen from the longest frame.
                unsafe {
                    if self.vnet > 0 {
                        // No offloads; hdr_len (native byte order) covers the whole frame.
                        let mut hdr = [0u8; VNET_HDR_LEN];
                        hdr[2..4].copy_from_slice(&(f.len() as u16).to_ne_bytes());
                        std::ptr::copy_nonoverlapping(hdr.as_ptr(), p.add(TX_DATA), self.vnet);
                    }
                    let data = p.add(TX_DATA + self.vnet);
                    std::ptr::copy_nonoverlapping(f.as_ptr(), data, f.len());
                    (*(p as *mut libc::tpacket2_hdr)).tp_len = (self.vnet + f.len()) as u32;
                }
                // Release: the kernel must see the frame before it sees the request.
                self.status(self.head + i)
                    .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
            }
            // Blocking: send(2) returns once every requested frame has left and been freed, so
            // all slots are ours again. MSG_DONTWAIT with slots refilled as they came back was
            // about 10 % slower on a veth pair (3 runs each, noisy), whether the receiving
            // side's softirq ran on this CPU or on another (RPS).
            while !self.all_available(chunk.len())? {
                // SAFETY: no buffer: the frames are in the ring.
                let r = unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, 0) };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        // The kernel dropped a frame for lack of room (on a veth pair: the
                        // receiving CPU's backlog was full) and put it back as a send request:
                        // the next send(2) starts again from it.
                        Some(libc::ENOBUFS | libc::EAGAIN) => back_off(stats),
                        Some(libc::EINTR) => {}
                        _ => return Err(e),
                    }
                }
            }
            stats.sent += chunk.len() as u64;
            self.head = (self.head + chunk.len()) % self.frame_nr;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "tx-ring"
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new(), not used after this.
        unsafe {
            libc::munmap(self.map as *mut libc::c_void, self.map_len);
        }
    }
}
