using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Contracts.Spec;

/// <summary>A <see cref="VmSpec"/> as JSON. Unknown fields are refused (a typo must not silently mean a default);
/// a malformed document is one <see cref="VmSpecException"/> whose field is the JSON path.</summary>
public static class VmSpecJson
{
    public static byte[] ToUtf8(VmSpec spec) => JsonSerializer.SerializeToUtf8Bytes(spec, SpecJsonContext.Default.VmSpec);

    public static string ToJson(VmSpec spec) => JsonSerializer.Serialize(spec, SpecJsonContext.Default.VmSpec);

    /// <summary>Parses and validates.</summary>
    public static VmSpec Parse(ReadOnlySpan<byte> utf8)
    {
        VmSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize(utf8, SpecJsonContext.Default.VmSpec);
        }
        catch (JsonException e)
        {
            throw FromJsonException(e);
        }
        return VmSpecValidator.Check(spec ?? throw new VmSpecException("$", "the spec is null"));
    }

    public static VmSpec Parse(string json) => Parse(System.Text.Encoding.UTF8.GetBytes(json));

    /// <summary>A JSON reader's error as a spec error on the field it names.</summary>
    public static VmSpecException FromJsonException(JsonException e)
    {
        string field = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "$" : e.Path.StartsWith("$.", StringComparison.Ordinal) ? e.Path[2..] : e.Path;
        if (e is SpecValueException value)
            return new VmSpecException([new SpecError(field, value.Detail)]);
        // The runtime's own message may be a bare resource key (UseSystemResourceKeys), so say it ourselves.
        string detail = field == "$" ? "not a JSON object"
            : e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "not a known field"
            : "missing, of the wrong type, or not a known field";
        return new VmSpecException([new SpecError(field, $"malformed JSON: {detail} (line {e.LineNumber + 1})")]);
    }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(VmSpec))]
public sealed partial class SpecJsonContext : JsonSerializerContext;
