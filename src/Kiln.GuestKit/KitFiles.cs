namespace Kiln.GuestKit;

/// <summary>A built kit: the cache directory and the files in it (Kernel is the ELF vmlinux to boot).</summary>
public sealed record KitFiles(string Directory, string Kernel, string? Bzimage, string Initramfs, string InitramfsGzip, bool FromCache)
{
    /// <summary>A `kiln run` line that boots the kit to its shell.</summary>
    public string RunCommand(string cmdline) =>
        $"kiln run --kernel {Kernel} --initrd {Initramfs} --memory 256M --cmdline \"{cmdline}\"";
}

/// <summary>Options of `kiln guest-kit build`.</summary>
public sealed record GuestKitOptions(string CacheRoot, int Jobs)
{
    public const string DefaultCacheRoot = "/var/cache/kiln/guest-kit";

    /// <summary>Kernel command line that suits the kit kernel on an emulating (PVM) KVM host. `erms,fsrm` off: the
    /// kernel's memcpy/memset/copy_user then use unrolled 8-byte moves instead of `rep movsb`, which KVM's emulator
    /// runs one byte per iteration (the initramfs unpacked and /init started markedly sooner in an A/B boot). `rodata=off`:
    /// no write protection of the kernel's read-only data, whose page-attribute walk over 10 MiB took about a tenth of
    /// an emulated boot (the kit is a test guest; the guest's own hardening is its choice). <see cref="NoAvxInUserSpace"/>:
    /// see there.</summary>
    public const string RecommendedCmdline =
        "console=ttyS0 reboot=k panic=1 noxsave clearcpuid=xsave,avx,avx2,avx512f,cx16,popcnt,fsgsbase,smap,pku,pcid,invpcid,rdrand,rdseed,erms,fsrm rodata=off tsc=reliable no_timer_check quiet " +
        NoAvxInUserSpace;

    /// <summary>Keeps glibc in the guest's processes off AVX and AVX-512 (the kernel passes it to init's environment).
    /// A PVM host runs guest ring 3 under the host's XCR0 and CPUID, so glibc finds AVX-512 usable, but a kernel
    /// booted with `noxsave` switches tasks with FXSAVE/FXRSTOR, which leave ymm/zmm upper halves, ymm16-31 and the
    /// mask registers to whichever process ran last: processes then crashed in their first TLS access on 2-vCPU
    /// guests (guestkit/README.md). AVX_Fast_Unaligned_Load must go too, or memcpy stays on its VEX version.</summary>
    public const string NoAvxInUserSpace =
        "GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX2,-AVX,-AVX_Fast_Unaligned_Load";

    /// <summary>Kernel command line for Debian's stock kernel (`--stock` kits) on an emulating (PVM) KVM host: that of
    /// the kit kernel, except that SMAP stays on (the stock kernel is not PVM-aware, so its system calls arrive as
    /// page faults at LSTAR, and Kiln completes them where the #PF entry runs CLAC: without SMAP that CLAC is a NOP
    /// and every system call kills its process), plus `mitigations=off nopti` (no CR3 switch per system call and
    /// exception, fewer alternatives; a test guest's hardening is its own choice). `ssse3` off: the stock kernel's
    /// built-in BLAKE2s (the random pool) would otherwise run SSSE3 code at ring 0, which KVM's emulator cannot.
    /// `nowatchdog`: the soft-lockup watchdog fires during the long emulated initcalls and each report (a symbolised
    /// stack trace) costs more emulated time. `cryptomgr.notests`: no self-test of each crypto algorithm as it registers
    /// (the RSA ones ran for minutes of emulated bignum code and still timed out loading the built-in X.509 keys).</summary>
    public const string StockRecommendedCmdline =
        "console=ttyS0 reboot=k panic=1 noxsave clearcpuid=xsave,avx,avx2,avx512f,cx16,popcnt,ssse3,fsgsbase,pku,pcid,invpcid,rdrand,rdseed,erms,fsrm " +
        "rodata=off tsc=reliable no_timer_check mitigations=off nopti nowatchdog cryptomgr.notests quiet " + NoAvxInUserSpace;
}
