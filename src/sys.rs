//! The few raw system calls mas-sockets makes, each with its safety argument.
//!
//! Every `unsafe` block of the crate lives here. The rest of the crate calls the
//! safe wrappers below, which take `BorrowedFd`s and return `io::Result`s with the
//! kernel's errno. Where `nix`, `socket2` or `std` already offer a safe call, the
//! wrapper uses it and only names the concern.
//!
//! Three things here are more than a wrapper:
//! - [`claim_inherited_fds`] turns the fd numbers systemd passed (`sd_listen_fds(3)`)
//!   into `OwnedFd`s, once per process.
//! - [`recv_with_credentials`] reads one datagram with its `SCM_CREDENTIALS` and closes
//!   every fd that came with it (`unix(7)`), so a sender cannot make us hold fds.
//! - [`spawn_with_fds`] adds the code that runs in the child between `fork` and
//!   `exec`: parent-death signal, the fd shuffle into 3.., and close-on-exec for
//!   everything else. It is async-signal-safe (`signal-safety(7)`).
//!
//! What the fds mean (families, names, the notify protocol) is left to
//! [`crate::activation`], [`crate::notify`] and [`crate::child`].

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use socket2::SockRef;

use crate::activation::LocalAddr;

/// Sets or clears `FD_CLOEXEC` on `fd`.
///
/// # Errors
///
/// The errno of `fcntl(2)`, e.g. `EBADF`.
pub fn set_cloexec(fd: BorrowedFd<'_>, close_on_exec: bool) -> io::Result<()> {
    let flags = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD)?);
    let wanted = if close_on_exec {
        flags | FdFlag::FD_CLOEXEC
    } else {
        flags - FdFlag::FD_CLOEXEC
    };
    if wanted != flags {
        fcntl(fd, FcntlArg::F_SETFD(wanted))?;
    }
    Ok(())
}

/// Whether `FD_CLOEXEC` is set on `fd`.
///
/// # Errors
///
/// The errno of `fcntl(2)`.
pub fn is_cloexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD)?);
    Ok(flags.contains(FdFlag::FD_CLOEXEC))
}

/// The file type bits (`st_mode & S_IFMT`) of what `fd` refers to.
///
/// Anonymous inodes (eventfd, epoll, ...) have no type bits and give 0.
///
/// # Errors
///
/// The errno of `fstat(2)`.
pub fn file_type(fd: BorrowedFd<'_>) -> io::Result<libc::mode_t> {
    let stat = nix::sys::stat::fstat(fd)?;
    Ok(stat.st_mode & libc::S_IFMT)
}

/// The address family of a socket (`SO_DOMAIN`), e.g. `libc::AF_INET6`.
///
/// # Errors
///
/// The errno of `getsockopt(2)`; `ENOTSOCK` when `fd` is not a socket.
pub fn socket_domain(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    Ok(SockRef::from(&fd).domain()?.into())
}

/// The type of a socket (`SO_TYPE`), e.g. `libc::SOCK_STREAM`.
///
/// # Errors
///
/// The errno of `getsockopt(2)`.
pub fn socket_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    Ok(SockRef::from(&fd).r#type()?.into())
}

/// Whether `listen(2)` was called on a socket (`SO_ACCEPTCONN`).
///
/// # Errors
///
/// The errno of `getsockopt(2)`.
pub fn socket_is_listening(fd: BorrowedFd<'_>) -> io::Result<bool> {
    SockRef::from(&fd).is_listener()
}

/// The `TCP_DEFER_ACCEPT` of a listening TCP socket, in seconds (`tcp(7)`):
/// 0 when connections are handed to `accept(2)` as soon as they are
/// established, else roughly how long the kernel waits for their first data.
///
/// # Errors
///
/// The errno of `getsockopt(2)`, e.g. `EOPNOTSUPP` for a Unix socket.
pub fn tcp_defer_accept(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes passed, and the
    // kernel writes at most `len` bytes into `value`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Sets `TCP_DEFER_ACCEPT` on a TCP socket: `accept(2)` then returns a
/// connection only once its first data has arrived, or after about `secs`.
///
/// # Errors
///
/// The errno of `setsockopt(2)`.
pub fn set_tcp_defer_accept(fd: BorrowedFd<'_>, secs: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a live `c_int` and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw const secs).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The local address of a socket (`getsockname(2)`), decoded.
///
/// Families other than inet, inet6 and unix give [`LocalAddr::Unknown`].
///
/// # Errors
///
/// The errno of `getsockname(2)`.
pub fn socket_local_addr(fd: BorrowedFd<'_>) -> io::Result<LocalAddr> {
    let addr = SockRef::from(&fd).local_addr()?;
    if let Some(inet) = addr.as_socket() {
        return Ok(LocalAddr::Inet(inet));
    }
    if !addr.is_unix() {
        return Ok(LocalAddr::Unknown);
    }
    Ok(if let Some(path) = addr.as_pathname() {
        LocalAddr::Unix(path.to_path_buf())
    } else if let Some(name) = addr.as_abstract_namespace() {
        LocalAddr::UnixAbstract(name.to_vec())
    } else {
        LocalAddr::UnixUnnamed
    })
}

/// Set once [`claim_inherited_fds`] has run, so no fd number is claimed twice.
static INHERITED_CLAIMED: AtomicBool = AtomicBool::new(false);

/// Why [`claim_inherited_fds`] took nothing.
#[derive(Debug)]
pub enum ClaimError {
    /// It already ran in this process.
    AlreadyClaimed,
    /// This fd of the range is not open (`EBADF`) or could not be queried.
    Fd { fd: RawFd, source: io::Error },
}

/// Takes ownership of the fds `start..start + count` that were open when the
/// process started, marks each close-on-exec and returns them in order.
///
/// All fds are checked first: if one is not open, none is taken and the others
/// stay open as they were (without close-on-exec). Runs once per process; later
/// calls return [`ClaimError::AlreadyClaimed`].
///
/// # Errors
///
/// See [`ClaimError`].
pub fn claim_inherited_fds(start: RawFd, count: usize) -> Result<Vec<OwnedFd>, ClaimError> {
    if INHERITED_CLAIMED.swap(true, Ordering::SeqCst) {
        return Err(ClaimError::AlreadyClaimed);
    }
    let numbers = || (0..count).map(|i| start.saturating_add(i as RawFd));
    for fd in numbers() {
        // SAFETY: F_GETFD only reads the fd's flags; it touches no memory and
        // does not change the fd, so asking about a number we do not own yet is
        // harmless.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(ClaimError::Fd {
                fd,
                source: io::Error::last_os_error(),
            });
        }
    }
    let mut owned = Vec::with_capacity(count);
    for fd in numbers() {
        // SAFETY: the fd is open (checked above) and was open when the process
        // started, so no file our code opened can have this number; the caller
        // passes the range systemd handed to this process (sd_listen_fds(3)),
        // and INHERITED_CLAIMED makes sure we wrap each number only once.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_cloexec(fd.as_fd(), true).map_err(|source| ClaimError::Fd {
            fd: fd.as_raw_fd(),
            source,
        })?;
        owned.push(fd);
    }
    Ok(owned)
}

/// The most fds one `SCM_RIGHTS` message can carry (the kernel's `SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;

/// Room for one `SCM_CREDENTIALS` and one full `SCM_RIGHTS` control message.
// SAFETY: CMSG_SPACE is arithmetic on its argument only.
const CONTROL_LEN: usize = unsafe {
    libc::CMSG_SPACE(size_of::<libc::ucred>() as libc::c_uint)
        + libc::CMSG_SPACE((SCM_MAX_FD * size_of::<RawFd>()) as libc::c_uint)
} as usize;

/// What [`recv_with_credentials`] read besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvInfo {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer; the rest is lost.
    pub truncated: bool,
    /// The sender's pid from `SCM_CREDENTIALS`; `None` when none came (the socket
    /// lacks `SO_PASSCRED`) or the kernel could not map it (pid 0).
    pub sender_pid: Option<u32>,
    /// How many fds arrived with `SCM_RIGHTS`; all of them are closed already.
    pub closed_fds: usize,
}

/// Receives one datagram without blocking (`MSG_DONTWAIT`).
///
/// Fds passed with it arrive close-on-exec (`MSG_CMSG_CLOEXEC`) and are closed
/// before this returns; only their count is reported. Retries on `EINTR`.
///
/// # Errors
///
/// The errno of `recvmsg(2)`; `WouldBlock` when no datagram is queued.
pub fn recv_with_credentials(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<RecvInfo> {
    // u64 words keep the buffer aligned for cmsghdr.
    let mut control = [0u64; CONTROL_LEN.div_ceil(size_of::<u64>())];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid value (null pointers,
    // zero lengths), and the fields we need are filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;

    let len = loop {
        // SAFETY: msg points at iov (valid for buf.len() bytes of buf) and at
        // control (valid for msg_controllen bytes); both outlive the call and
        // nothing else accesses them meanwhile.
        let n = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };

    let mut info = RecvInfo {
        len: len.min(buf.len()),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        sender_pid: None,
        closed_fds: 0,
    };
    let control_end = msg.msg_control as usize + msg.msg_controllen as usize;
    // SAFETY: msg is the header recvmsg just filled in; msg_controllen now
    // holds the bytes the kernel wrote into control.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return null or a pointer to a whole,
        // aligned cmsghdr inside control, which the kernel initialised.
        let header = unsafe { &*cmsg };
        // SAFETY: CMSG_DATA is pointer arithmetic within the same header.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        // Even under MSG_CTRUNC the kernel writes consistent headers, but clamp
        // to the buffer rather than trust cmsg_len blindly.
        let end = (cmsg as usize + header.cmsg_len as usize).min(control_end);
        let data_len = end.saturating_sub(data as usize);
        match (header.cmsg_level, header.cmsg_type) {
            (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                for i in 0..data_len / size_of::<RawFd>() {
                    // SAFETY: i * 4 + 4 <= data_len, so the read stays inside
                    // this message's data; the data may be unaligned for i32.
                    let raw = unsafe {
                        data.add(i * size_of::<RawFd>())
                            .cast::<RawFd>()
                            .read_unaligned()
                    };
                    if raw >= 0 {
                        // SAFETY: the kernel has just installed this fd in our
                        // table for this call; no other code knows its number.
                        drop(unsafe { OwnedFd::from_raw_fd(raw) });
                        info.closed_fds += 1;
                    }
                }
            }
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) if data_len >= size_of::<libc::ucred>() => {
                // SAFETY: data_len covers a whole ucred; read_unaligned copes
                // with any alignment.
                let cred = unsafe { data.cast::<libc::ucred>().read_unaligned() };
                info.sender_pid = u32::try_from(cred.pid).ok().filter(|&pid| pid > 0);
            }
            _ => {}
        }
        // SAFETY: msg and cmsg are as above; CMSG_NXTHDR checks the bounds
        // against msg_controllen and returns null past the last header.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(info)
}

/// The most fds a child can be given (far more than any MAS config lists). The
/// pre-exec code keeps them in fixed arrays because it must not allocate.
pub const MAX_CHILD_FDS: usize = 256;

/// Everything the child needs between `fork` and `exec`, prepared in the parent.
///
/// Plain fixed-size data, so the code that runs in the child only reads it.
#[derive(Clone, Copy)]
struct ChildFdPlan {
    sources: [RawFd; MAX_CHILD_FDS],
    count: usize,
    supervisor_pid: libc::pid_t,
}

impl ChildFdPlan {
    /// Plans to place `sources[i]` at fd `3 + i` in a child of this process.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when there are more than [`MAX_CHILD_FDS`] sources.
    fn new(sources: &[BorrowedFd<'_>]) -> io::Result<Self> {
        if sources.len() > MAX_CHILD_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} sockets for the child, more than the {MAX_CHILD_FDS} supported: list fewer binds",
                    sources.len()
                ),
            ));
        }
        let mut plan = ChildFdPlan {
            sources: [-1; MAX_CHILD_FDS],
            count: sources.len(),
            supervisor_pid: nix::unistd::getpid().as_raw(),
        };
        for (slot, fd) in plan.sources.iter_mut().zip(sources) {
            *slot = fd.as_raw_fd();
        }
        Ok(plan)
    }

    /// The work done in the child after `fork`, before `exec`.
    ///
    /// Async-signal-safe: only raw system calls on the plan's fixed arrays and
    /// on the stack; no allocation, no locks (`io::Error::last_os_error` and
    /// `from_raw_os_error` store the errno inline). Must only run in a freshly
    /// forked child: it replaces fds 3.. of the calling process.
    fn apply_in_child(&self) -> io::Result<()> {
        // SAFETY: prctl with PR_SET_PDEATHSIG takes two integers and touches no
        // memory of ours.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // The supervisor may have died between fork and prctl; then no signal
        // will come, so check who our parent is now.
        // SAFETY: getppid cannot fail and touches no memory.
        if unsafe { libc::getppid() } != self.supervisor_pid {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }

        let count = self.count.min(MAX_CHILD_FDS);
        let first_free = libc::c_int::try_from(3 + count)
            .map_err(|_| io::Error::from_raw_os_error(libc::EMFILE))?;
        // First copy every source above the target range, so moving one source
        // into its slot cannot overwrite another source that sits there.
        let mut staged = [-1 as RawFd; MAX_CHILD_FDS];
        for (slot, &source) in staged.iter_mut().zip(&self.sources[..count]) {
            // SAFETY: F_DUPFD_CLOEXEC only creates a new fd; on failure it
            // returns -1 and changes nothing.
            let copy = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, first_free) };
            if copy == -1 {
                return Err(io::Error::last_os_error());
            }
            *slot = copy;
        }
        for (i, &copy) in staged[..count].iter().enumerate() {
            // SAFETY: dup2 replaces fd 3 + i in this child's own table, which is
            // what this child is for; the copy is >= first_free, so never equal
            // to the target. The new fd has FD_CLOEXEC cleared, so it survives
            // exec; the staged copies keep it and vanish at exec.
            if unsafe { libc::dup2(copy, 3 + i as libc::c_int) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        // Everything above the range becomes close-on-exec, whoever opened it.
        // Closing instead would break std's own exec-error pipe. cloexec_from
        // is one system call and allocates nothing, so it is fine here.
        cloexec_from(first_free)?;
        Ok(())
    }
}

/// A pidfd for `pid` (pidfd_open(2)), close-on-exec. It keeps naming that very
/// process after it exits, so a signal sent through it can never reach a
/// process that reused the pid.
///
/// # Errors
///
/// The errno of pidfd_open(2) (`ESRCH` when the process is gone already).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags (none: pidfds are always
    // close-on-exec) and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `signal` through a pidfd (pidfd_send_signal(2)).
///
/// # Errors
///
/// `ESRCH` when the process has exited (even if not yet reaped).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, a null siginfo (as kill(2) would
    // send) and no flags; touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the file at `path` has the extended attribute `name`
/// (getxattr(2), following symbolic links), such as `system.posix_acl_access`
/// for an ACL. A file system without extended attributes has none.
///
/// # Errors
///
/// The errno of getxattr(2) other than `ENODATA` and `ENOTSUP`, e.g.
/// `ENOENT`, and `EINVAL` for a path or name with a NUL byte.
pub fn has_xattr(path: &std::path::Path, name: &str) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt as _;
    let nul = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(nul)?;
    let name = std::ffi::CString::new(name).map_err(nul)?;
    // SAFETY: two NUL-terminated strings that outlive the call, and a null
    // buffer of size 0, with which getxattr only returns the value's size
    // and writes nothing.
    let r = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    if r >= 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::ENOTSUP)) => Ok(false),
        e => Err(e),
    }
}

/// Marks every fd from `first` up close-on-exec, whoever opened it.
///
/// # Errors
///
/// The errno of `close_range(2)`, except on kernels that lack it or its
/// `CLOSE_RANGE_CLOEXEC` flag (before 5.11), where this does nothing.
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    let Ok(first) = libc::c_uint::try_from(first) else {
        return Ok(());
    };
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on fds of
    // this process and takes integers only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == -1 {
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) {
            return Err(err);
        }
    }
    Ok(())
}

/// Spawns `cmd` with `fds[i]` at fd `3 + i` in the child.
///
/// In the child, before `exec`: `PR_SET_PDEATHSIG` with `SIGKILL` (the kernel
/// sends it when the *thread* that forked exits, so spawn from a thread that
/// lives as long as the supervisor), then a check that the parent is still us,
/// then the fds at 3.. in order, and close-on-exec for every fd above them. The
/// fds keep their flags in this process.
///
/// # Errors
///
/// `InvalidInput` for more than [`MAX_CHILD_FDS`] fds; the error of `fork` or
/// `exec`; or the errno of the step that failed in the child, which then exits.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn spawn_with_fds(
    mut cmd: tokio::process::Command,
    fds: &[BorrowedFd<'_>],
) -> io::Result<tokio::process::Child> {
    let plan = ChildFdPlan::new(fds)?;
    // SAFETY: the closure runs in the forked child, where only async-signal-safe
    // work is allowed. apply_in_child makes raw system calls on the plan, which
    // the closure owns by value (a Copy of fixed arrays, moved in before fork),
    // and it neither allocates nor takes locks. The fd numbers in the plan stay
    // open until the fork: `fds` borrows them for this whole call, and `cmd`,
    // which holds the closure, is dropped before we return.
    unsafe {
        cmd.pre_exec(move || plan.apply_in_child());
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloexec_can_be_set_and_cleared() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        assert!(
            is_cloexec(file.as_fd()).unwrap(),
            "std opens with O_CLOEXEC"
        );
        set_cloexec(file.as_fd(), false).unwrap();
        assert!(!is_cloexec(file.as_fd()).unwrap());
        set_cloexec(file.as_fd(), true).unwrap();
        assert!(is_cloexec(file.as_fd()).unwrap());
    }

    #[test]
    fn control_buffer_holds_credentials_and_the_most_fds() {
        assert!(CONTROL_LEN >= size_of::<libc::ucred>() + SCM_MAX_FD * 4);
    }

    #[test]
    fn plan_rejects_too_many_sources() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let fds = vec![file.as_fd(); MAX_CHILD_FDS + 1];
        let err = ChildFdPlan::new(&fds).err().expect("too many fds");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(ChildFdPlan::new(&fds[..MAX_CHILD_FDS]).is_ok());
    }
}
