//! Passing descriptors between hutch's processes over unix sockets
//! (SCM_RIGHTS): the TAP device and the pty from the container's init,
//! the container's namespaces from its relay, and those again to
//! `hutch exec`. Only syscalls and fixed buffers: the senders include
//! processes forked from a multi-threaded hutch.

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

/// The most descriptors one message carries.
pub const MAX_FDS: usize = 8;

/// Send `fds` with `payload` (at least one byte) over `sock`.
pub fn send_fds(sock: BorrowedFd<'_>, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
    if fds.len() > MAX_FDS || payload.is_empty() {
        return Err(Errno::INVAL);
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !anc.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::NOBUFS);
    }
    sendmsg(
        sock,
        &[std::io::IoSlice::new(payload)],
        &mut anc,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Receive one message from `sock` into `buf`: the number of payload
/// bytes (0: the other side closed without sending) and the descriptors
/// it carried (close-on-exec).
pub fn recv_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let r = recvmsg(
        sock,
        &mut [std::io::IoSliceMut::new(buf)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = msg {
            fds.extend(got);
        }
    }
    Ok((r.bytes, fds))
}

/// Send one `fd` over `sock`.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    send_fds(sock, b"t", &[fd])
}

/// Receive one fd from `sock`; `Ok(None)` when the other side closed
/// without sending one (the container failed before it existed).
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    let mut buf = [0u8; 1];
    let (n, fds) = recv_fds(sock, &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(fds.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    #[test]
    fn several_descriptors_arrive_in_order_with_the_payload() {
        let (a, b) = pair();
        let files: Vec<std::fs::File> = (0..3).map(|_| tempfile::tempfile().unwrap()).collect();
        for (i, f) in files.iter().enumerate() {
            rustix::io::write(f, format!("file {i}").as_bytes()).unwrap();
        }
        let fds: Vec<BorrowedFd> = files.iter().map(|f| f.as_fd()).collect();
        send_fds(a.as_fd(), b"abc", &fds).unwrap();
        let mut buf = [0u8; 16];
        let (n, got) = recv_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc");
        assert_eq!(got.len(), 3);
        for (i, fd) in got.iter().enumerate() {
            let mut text = [0u8; 16];
            let n = rustix::io::pread(fd, &mut text, 0).unwrap();
            assert_eq!(&text[..n], format!("file {i}").as_bytes());
        }
    }

    #[test]
    fn a_closed_peer_is_none_and_too_many_descriptors_are_refused() {
        let (a, b) = pair();
        let f = tempfile::tempfile().unwrap();
        let many = vec![f.as_fd(); MAX_FDS + 1];
        assert_eq!(send_fds(a.as_fd(), b"x", &many), Err(Errno::INVAL));
        drop(a);
        assert!(recv_fd(b.as_fd()).unwrap().is_none());
    }
}
