namespace Kiln.Contracts.Spec;

/// <summary>One field of a VM spec that is not acceptable: <see cref="Field"/> is its path (machine.cpus,
/// disks[1].serial), <see cref="Message"/> says what is wrong with it.</summary>
public sealed record SpecError(string Field, string Message)
{
    public override string ToString() => $"{Field}: {Message}";
}

/// <summary>A VM spec that cannot run: every bad field in <see cref="Errors"/>, the first one as the message.</summary>
public sealed class VmSpecException : KilnException
{
    public VmSpecException(IReadOnlyList<SpecError> errors)
        : base(errors.Count == 0 ? "invalid VM spec" : errors[0].ToString())
    {
        Errors = errors;
    }

    public VmSpecException(string field, string message) : this([new SpecError(field, message)])
    {
    }

    public IReadOnlyList<SpecError> Errors { get; }

    /// <summary>The first bad field.</summary>
    public string Field => Errors.Count == 0 ? "" : Errors[0].Field;
}
