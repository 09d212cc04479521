//! Dropping root after start-up (`user`/`group`), keeping `CAP_NET_ADMIN` so the addresses and
//! routes set at start can still be removed at exit (as a hardened OpenVPN set-up does).

use std::ffi::{CStr, CString};

use crate::PlatformError;

const CAP_NET_ADMIN: u32 = 12;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn err(what: &str) -> PlatformError {
    PlatformError::InvalidArgument(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn lookup_user(name: &str) -> Result<(u32, u32), PlatformError> {
    let c =
        CString::new(name).map_err(|_| PlatformError::InvalidArgument("bad user name".into()))?;
    let mut pwd: libc::passwd = unsafe_zeroed_passwd();
    let mut buf = vec![0u8; 16384];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call: `c` is NUL-terminated, `pwd` and `buf` live
    // until the end of this function and `buf.len()` is its size.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(PlatformError::InvalidArgument(format!(
            "user '{name}' does not exist"
        )));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: `passwd` is a plain C struct of integers and pointers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn lookup_group(name: &str) -> Result<u32, PlatformError> {
    let c =
        CString::new(name).map_err(|_| PlatformError::InvalidArgument("bad group name".into()))?;
    // SAFETY: `group` is a plain C struct; all-zero is a valid value.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16384];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `lookup_user`: valid, live pointers and the buffer's real size.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(PlatformError::InvalidArgument(format!(
            "group '{name}' does not exist"
        )));
    }
    Ok(grp.gr_gid)
}

/// Switches the whole process to `user` (and `group`, else the user's primary group). With
/// `keep_net_admin`, `CAP_NET_ADMIN` stays effective (and ambient) for the thread that called
/// this, so routes and addresses can be removed at exit. Call it from the thread that will do
/// that work, before other threads are started, or check [`all_threads_run_as`] after.
pub fn drop_privileges(
    user: Option<&str>,
    group: Option<&str>,
    keep_net_admin: bool,
) -> Result<(u32, u32), PlatformError> {
    let (uid, user_gid) = match user {
        Some(u) => lookup_user(u)?,
        // SAFETY: getuid/getgid cannot fail and have no preconditions.
        None => unsafe { (libc::getuid(), libc::getgid()) },
    };
    let gid = match group {
        Some(g) => lookup_group(g)?,
        None => user_gid,
    };
    if keep_net_admin {
        // SAFETY: prctl with PR_SET_KEEPCAPS takes plain integers.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
            return Err(err("prctl(PR_SET_KEEPCAPS)"));
        }
    }
    let groups = [gid];
    // SAFETY: `groups` outlives the call and holds exactly one gid.
    if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
        return Err(err("setgroups"));
    }
    // SAFETY: setgid/setuid take plain integers; glibc applies them to every thread.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(err("setgid"));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(err("setuid"));
    }
    if keep_net_admin {
        let mut hdr = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let bit = 1u32 << CAP_NET_ADMIN;
        let data = [
            CapData {
                effective: bit,
                permitted: bit,
                inheritable: bit,
            },
            CapData::default(),
        ];
        // SAFETY: capset reads a version-3 header and two data structs, which is what we pass;
        // both live until the call returns.
        if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) }
            != 0
        {
            return Err(err("capset(CAP_NET_ADMIN)"));
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                CAP_NET_ADMIN as libc::c_ulong,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(err("prctl(PR_CAP_AMBIENT_RAISE)"));
        }
    }
    Ok((uid, gid))
}

/// Whether every thread of this process runs with real, effective and saved user id `uid`
/// (read from `/proc/self/task/*/status`).
pub fn all_threads_run_as(uid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
            s.lines().any(|l| {
                l.strip_prefix("Uid:").is_some_and(|ids| {
                    ids.split_whitespace()
                        .take(3)
                        .all(|v| v.parse::<u32>() == Ok(uid))
                })
            })
        })
    })
}

/// Name of the user `uid` (for messages).
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name at once.
    let p = unsafe { libc::getpwuid(uid) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `pw_name` of a non-null passwd entry is a valid NUL-terminated string.
    Some(
        unsafe { CStr::from_ptr((*p).pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_and_groups_are_named_in_the_error() {
        let e = lookup_user("no-such-user-ferrovpn").unwrap_err();
        assert!(e.to_string().contains("no-such-user-ferrovpn"));
        let e = lookup_group("no-such-group-ferrovpn").unwrap_err();
        assert!(e.to_string().contains("no-such-group-ferrovpn"));
        assert_eq!(lookup_user("root").unwrap(), (0, 0));
    }
}
