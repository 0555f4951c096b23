using System.Buffers;
using System.IO.Compression;
using System.Numerics;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace ModelGateway.Api.Tokenization;

/// <summary>
/// Token counts in OpenAI's <c>o200k_base</c> encoding (GPT-4o and later): the encoding's pre-tokenising pattern, then
/// byte-pair merges by rank, as tiktoken does.
/// <para>
/// Why not Microsoft.ML.Tokenizers' own <c>TiktokenTokenizer</c>, which counts the same (the tests compare the two on
/// every kind of text): its vocabulary lives in three dictionaries of 200,000 entries with an object per token, 42 MB
/// and 400,000 objects that every full garbage collection traces: a blocking gen2 took 5-12 ms on an idle core with it
/// and 0.1 ms without (docs/benchmark.md, session 20). Here the same ranks live in three arrays of numbers and bytes,
/// about 4 MB that a collection never looks inside. The ranks are the library's own data package's
/// file, so nothing is downloaded or copied into this repository.
/// </para>
/// </summary>
internal sealed partial class O200kEncoding
{
    private const string DataAssembly = "Microsoft.ML.Tokenizers.Data.O200kBase";
    private const string DataResource = "o200k_base.tiktoken.deflate";

    /// <summary>The encoding's special tokens; each counts as one token where it appears in the text.</summary>
    private static readonly string[] SpecialTokens = ["<|endoftext|>", "<|endofprompt|>"];

    /// <summary>Pieces longer than this (in bytes) merge through a heap instead of a scan per merge.</summary>
    private const int ScanLimit = 64;

    private readonly byte[] _bytes; // every token's bytes, back to back, in rank order
    private readonly int[] _start; // token of rank r: _bytes[_start[r].._start[r + 1]]
    private readonly int[] _slots; // open addressing over the tokens' bytes: rank + 1, 0 for empty
    private readonly int _mask;

    private O200kEncoding(byte[] bytes, int[] start, int[] slots)
    {
        _bytes = bytes;
        _start = start;
        _slots = slots;
        _mask = slots.Length - 1;
    }

    /// <summary>Reads the ranks from the data package: a "Capacity: N" line, then one base64 token per line in rank order.</summary>
    public static O200kEncoding Load()
    {
        using var compressed = Assembly.Load(DataAssembly).GetManifestResourceStream(DataResource)
            ?? throw new InvalidOperationException($"{DataAssembly} has no resource {DataResource}.");
        using var reader = new StreamReader(new DeflateStream(compressed, CompressionMode.Decompress), Encoding.ASCII);
        var bytes = new List<byte>(1 << 21);
        var start = new List<int>(200_001) { 0 };
        Span<byte> token = stackalloc byte[256];
        while (reader.ReadLine() is { Length: > 0 } line)
        {
            if (start.Count == 1 && line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }
            if (!Convert.TryFromBase64Chars(line, token, out var length) || length == 0)
            {
                throw new InvalidDataException($"{DataResource}: unexpected line for rank {start.Count - 1}.");
            }
            bytes.AddRange(token[..length]);
            start.Add(bytes.Count);
        }
        var slots = new int[(int)BitOperations.RoundUpToPowerOf2((uint)start.Count * 2)];
        var encoding = new O200kEncoding([.. bytes], [.. start], slots);
        for (var rank = 0; rank < start.Count - 1; rank++)
        {
            encoding.Insert(rank);
        }
        return encoding;
    }

    /// <summary>Number of tokens the text encodes to, special tokens included as one each.</summary>
    public int CountTokens(ReadOnlySpan<char> text)
    {
        var count = 0;
        while (!text.IsEmpty)
        {
            var (at, special) = NextSpecialToken(text);
            count += CountOrdinary(at < 0 ? text : text[..at]);
            if (at < 0)
            {
                break;
            }
            count++;
            text = text[(at + special)..];
        }
        return count;
    }

    private static (int At, int Length) NextSpecialToken(ReadOnlySpan<char> text)
    {
        var from = 0;
        while (true)
        {
            var at = text[from..].IndexOf("<|", StringComparison.Ordinal);
            if (at < 0)
            {
                return (-1, 0);
            }
            at += from;
            foreach (var special in SpecialTokens)
            {
                if (text[at..].StartsWith(special, StringComparison.Ordinal))
                {
                    return (at, special.Length);
                }
            }
            from = at + 2;
        }
    }

    private int CountOrdinary(ReadOnlySpan<char> text)
    {
        var count = 0;
        byte[]? rented = null;
        Span<byte> buffer = stackalloc byte[1024];
        foreach (var match in Pieces().EnumerateMatches(text))
        {
            var piece = text.Slice(match.Index, match.Length);
            var needed = Encoding.UTF8.GetMaxByteCount(piece.Length);
            if (needed > buffer.Length)
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
                rented = ArrayPool<byte>.Shared.Rent(needed);
                buffer = rented;
            }
            var bytes = buffer[..Utf8(piece, buffer)];
            count += Rank(bytes) >= 0 ? 1 : bytes.Length <= ScanLimit ? MergeByScan(bytes) : MergeByHeap(bytes);
        }
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
        return count;
    }

    /// <summary>
    /// UTF-8 bytes of the piece. A lone surrogate (text that is not valid UTF-16, which JSON's \uD800 escapes can carry)
    /// becomes its own three-byte sequence, as Microsoft.ML.Tokenizers encodes it, instead of U+FFFD.
    /// </summary>
    private static int Utf8(ReadOnlySpan<char> piece, Span<byte> buffer)
    {
        if (!piece.ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            return Encoding.UTF8.GetBytes(piece, buffer);
        }
        var written = 0;
        for (var i = 0; i < piece.Length; i++)
        {
            if (Rune.DecodeFromUtf16(piece[i..], out var rune, out var used) == OperationStatus.Done)
            {
                written += rune.EncodeToUtf8(buffer[written..]);
                i += used - 1;
                continue;
            }
            int c = piece[i];
            buffer[written++] = (byte)(0xE0 | (c >> 12));
            buffer[written++] = (byte)(0x80 | ((c >> 6) & 0x3F));
            buffer[written++] = (byte)(0x80 | (c & 0x3F));
        }
        return written;
    }

    /// <summary>
    /// tiktoken's merge: parts start as single bytes; the adjacent pair whose joined bytes have the lowest rank (the leftmost
    /// on a tie) is joined, until no joined pair is a token. The count of parts left is the count of tokens.
    /// </summary>
    private int MergeByScan(ReadOnlySpan<byte> piece)
    {
        Span<int> start = stackalloc int[ScanLimit + 1]; // part i: piece[start[i]..start[i + 1]]
        Span<int> pair = stackalloc int[ScanLimit]; // rank of parts i and i + 1 joined, or int.MaxValue
        var parts = piece.Length;
        for (var i = 0; i <= parts; i++)
        {
            start[i] = i;
        }
        for (var i = 0; i < parts - 1; i++)
        {
            pair[i] = RankOrMax(piece[i..(i + 2)]);
        }
        while (parts > 1)
        {
            var best = 0;
            for (var i = 1; i < parts - 1; i++)
            {
                if (pair[i] < pair[best])
                {
                    best = i;
                }
            }
            if (pair[best] == int.MaxValue)
            {
                break;
            }
            // Join parts best and best + 1: drop the boundary between them.
            start[(best + 2)..(parts + 1)].CopyTo(start[(best + 1)..]);
            parts--;
            pair[(best + 1)..parts].CopyTo(pair[best..]);
            if (best < parts - 1)
            {
                pair[best] = RankOrMax(piece[start[best]..start[best + 2]]);
            }
            if (best > 0)
            {
                pair[best - 1] = RankOrMax(piece[start[best - 1]..start[best + 1]]);
            }
        }
        return parts;
    }

    /// <summary>The same merge for long pieces: the candidate pairs in a heap by (rank, position), stale ones skipped.</summary>
    private int MergeByHeap(ReadOnlySpan<byte> piece)
    {
        var n = piece.Length;
        var next = new int[n + 1]; // part starting at i ends at next[i]; -1 once joined into the part before it
        var prev = new int[n + 1];
        for (var i = 0; i <= n; i++)
        {
            next[i] = i + 1;
            prev[i] = i - 1;
        }
        var heap = new PriorityQueue<(int Left, int Middle, int End), (int Rank, int Left)>(n);
        for (var i = 0; i + 2 <= n; i++)
        {
            Push(heap, piece, i, i + 1, i + 2);
        }
        var parts = n;
        while (heap.TryDequeue(out var candidate, out _))
        {
            var (left, middle, end) = candidate;
            if (next[left] != middle || next[middle] != end)
            {
                continue; // one side was joined into something else since
            }
            next[left] = end;
            next[middle] = -1;
            prev[end] = left;
            parts--;
            if (end < n)
            {
                Push(heap, piece, left, end, next[end]);
            }
            if (left > 0)
            {
                Push(heap, piece, prev[left], left, end);
            }
        }
        return parts;
    }

    private void Push(PriorityQueue<(int, int, int), (int, int)> heap, ReadOnlySpan<byte> piece, int left, int middle, int end)
    {
        var rank = Rank(piece[left..end]);
        if (rank >= 0)
        {
            heap.Enqueue((left, middle, end), (rank, left));
        }
    }

    private int RankOrMax(ReadOnlySpan<byte> bytes)
    {
        var rank = Rank(bytes);
        return rank < 0 ? int.MaxValue : rank;
    }

    /// <summary>The rank of the token with exactly these bytes, or -1.</summary>
    private int Rank(ReadOnlySpan<byte> bytes)
    {
        for (var slot = Hash(bytes) & _mask; ; slot = (slot + 1) & _mask)
        {
            var entry = _slots[slot];
            if (entry == 0)
            {
                return -1;
            }
            var rank = entry - 1;
            if (bytes.SequenceEqual(_bytes.AsSpan(_start[rank], _start[rank + 1] - _start[rank])))
            {
                return rank;
            }
        }
    }

    private void Insert(int rank)
    {
        var bytes = _bytes.AsSpan(_start[rank], _start[rank + 1] - _start[rank]);
        var slot = Hash(bytes) & _mask;
        while (_slots[slot] != 0)
        {
            slot = (slot + 1) & _mask;
        }
        _slots[slot] = rank + 1;
    }

    private static int Hash(ReadOnlySpan<byte> bytes)
    {
        var hash = new HashCode();
        hash.AddBytes(bytes);
        return hash.ToHashCode();
    }

    /// <summary>
    /// The encoding's pre-tokenising pattern (tiktoken's o200k_base definition): words with an optional leading
    /// non-letter and English contractions, numbers of up to three digits, runs of punctuation, line breaks, spaces.
    /// </summary>
    [GeneratedRegex(@"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")]
    private static partial Regex Pieces();
}
