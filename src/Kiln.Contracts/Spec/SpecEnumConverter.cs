using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Contracts.Spec;

/// <summary>An enum as its lower-case name ("serial", "mmio"); any other text is one clear error that lists the
/// names (the JSON reader adds the field).</summary>
public sealed class SpecEnumConverter<T> : JsonConverter<T> where T : struct, Enum
{
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string? text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        if (text is not null && SpecEnum.TryParse(text, out T value))
            return value;
        throw new SpecValueException(text is null ? $"must be one of {SpecEnum.Names<T>()}" : $"'{text}' is not one of {SpecEnum.Names<T>()}");
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) =>
        writer.WriteStringValue(SpecEnum.Name(value));
}

/// <summary>A value the JSON reader could parse but the spec does not allow; its field comes from the reader.</summary>
public sealed class SpecValueException(string detail) : JsonException(detail)
{
    public string Detail { get; } = detail;
}

/// <summary>Lower-case names of spec enums, for JSON, the CLI and messages.</summary>
public static class SpecEnum
{
    public static string Name<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    public static string Names<T>() where T : struct, Enum =>
        string.Join(", ", Enum.GetValues<T>().Select(v => Name(v)));

    public static bool TryParse<T>(string text, out T value) where T : struct, Enum
    {
        foreach (var v in Enum.GetValues<T>())
        {
            if (string.Equals(Name(v), text, StringComparison.OrdinalIgnoreCase))
            {
                value = v;
                return true;
            }
        }
        value = default;
        return false;
    }
}
