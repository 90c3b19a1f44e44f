using System.Buffers.Binary;
using System.Text;
using Kiln.Storage.Qcow2;

namespace Kiln.Storage;

/// <summary>The outcome of `kiln img check`. Exit codes follow qemu-img: 0 clean, 2 corruptions, 3 leaks only,
/// 1 when the check could not run, 63 when the format has nothing to check.</summary>
public sealed record CheckResult(int Corruptions, int Leaks, int LeaksFixed, IReadOnlyList<string> Findings,
    ulong AllocatedClusters, ulong TotalClusters, ulong ImageEndOffset, bool Supported = true)
{
    public int ExitCode => !Supported ? 63 : Corruptions > 0 ? 2 : Leaks > 0 ? 3 : 0;

    public string Report()
    {
        var s = new StringBuilder();
        if (!Supported)
            return "This image format does not support checks\n";
        foreach (var f in Findings)
            s.Append(f).Append('\n');
        if (Findings.Count > 0)
            s.Append('\n');
        if (LeaksFixed > 0)
            s.Append($"The following inconsistencies were found and repaired:\n\n    {LeaksFixed} leaked clusters\n    0 corruptions\n\n");
        if (Corruptions > 0)
            s.Append($"{Corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n");
        if (Leaks > 0)
            s.Append($"{Leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n");
        if (Corruptions == 0 && Leaks == 0)
            s.Append("No errors were found on the image.\n");
        if (TotalClusters > 0)
            s.Append($"{AllocatedClusters}/{TotalClusters} = {100.0 * AllocatedClusters / TotalClusters:0.00}% allocated\n");
        s.Append($"Image end offset: {ImageEndOffset}\n");
        return s.ToString();
    }
}

/// <summary>`kiln img check [--repair]`: counts every reference the metadata makes (header, L1, refcount table and
/// blocks, L2 tables, data and compressed clusters) and compares with the stored refcounts. Stored below
/// referenced is corruption; above is a leak, which --repair lowers. Also reports references past the end of the
/// file, misaligned entries, clusters used twice as metadata, and wrong COPIED flags.</summary>
public static class ImageCheck
{
    public static CheckResult Run(string path, bool repairLeaks)
    {
        if (DiskImage.Probe(path) != "qcow2")
            return new CheckResult(0, 0, 0, [], 0, 0, 0, Supported: false);
        using var file = ImageFile.Open(path, readOnly: !repairLeaks);
        var header = Qcow2HeaderParser.Read(file);
        if (header.SnapshotCount > 0)
            throw new ImageFormatException($"{path}: checking images with internal snapshots is not supported");
        return new Checker(file, header).Run(repairLeaks);
    }

    private sealed class Checker(ImageFile file, Qcow2Header header)
    {
        private readonly Dictionary<ulong, ulong> _references = [];
        private readonly Dictionary<ulong, string> _metadata = [];
        private readonly List<string> _findings = [];
        private readonly List<(ulong Cluster, bool Copied, string Where)> _copiedFlags = [];
        private int _corruptions;
        private int Bits => header.ClusterBits;
        private ulong ClusterSize => header.ClusterSize;

        public CheckResult Run(bool repair)
        {
            AddMetadata(0, 1, "header");
            if (header.BackingFileOffset != 0)
                AddMetadata(header.BackingFileOffset >> Bits, 1, "header");
            AddMetadata(header.L1TableOffset >> Bits, Clusters(header.L1Bytes), "L1 table");
            AddMetadata(header.RefcountTableOffset >> Bits, header.RefcountTableClusters, "refcount table");
            var guard = new MetadataGuard(file, Bits)
            {
                L1Offset = header.L1TableOffset, L1Bytes = header.L1Bytes,
                RefcountTableOffset = header.RefcountTableOffset, RefcountTableBytes = header.RefcountTableBytes,
            };
            var refcounts = new RefcountTable(file, header, guard);
            for (int ti = 0; ti < refcounts.Entries.Count; ti++)
            {
                ulong block = refcounts.Entries[ti];
                if (block == 0)
                    continue;
                if (!ValidOffset(block, $"refcount block {ti}"))
                    continue;
                AddMetadata(block >> Bits, 1, "refcount block");
            }
            WalkL1();

            // Stored refcounts: every cluster any block counts, and every referenced one.
            var stored = new Dictionary<ulong, ulong>();
            for (int ti = 0; ti < refcounts.Entries.Count; ti++)
            {
                ulong block = refcounts.Entries[ti];
                if (block == 0 || block % ClusterSize != 0 || block >= file.Length || block < ClusterSize)
                    continue;
                var data = new byte[ClusterSize];
                file.ReadAvailable(block, data);
                for (ulong i = 0; i < header.RefcountBlockEntries; i++)
                {
                    ulong value = RefcountEntries.Get(data, i, header.RefcountOrder);
                    if (value != 0)
                        stored[(ulong)ti * header.RefcountBlockEntries + i] = value;
                }
            }
            int leaks = 0, fixedLeaks = 0;
            foreach (ulong cluster in stored.Keys.Union(_references.Keys).Order())
            {
                ulong have = stored.GetValueOrDefault(cluster);
                ulong want = _references.GetValueOrDefault(cluster);
                if (want > refcounts.MaxRefcount)
                {
                    _findings.Add($"ERROR cluster {cluster} has {want} references, more than {header.RefcountBits}-bit refcounts hold");
                    _corruptions++;
                }
                else if (have < want)
                {
                    _findings.Add($"ERROR cluster {cluster} refcount={have} reference={want}");
                    _corruptions++;
                }
                else if (have > want)
                {
                    if (repair && (cluster / header.RefcountBlockEntries) < (ulong)refcounts.Entries.Count)
                    {
                        _findings.Add($"Repairing cluster {cluster} refcount={have} reference={want}");
                        refcounts.Set(cluster, want);
                        fixedLeaks++;
                    }
                    else
                    {
                        _findings.Add($"Leaked cluster {cluster} refcount={have} reference={want}");
                        leaks++;
                    }
                }
            }
            foreach (var (cluster, copied, where) in _copiedFlags)
            {
                bool shouldBe = stored.GetValueOrDefault(cluster) == 1;
                if (copied != shouldBe)
                {
                    _findings.Add($"ERROR OFLAG_COPIED {where}: cluster {cluster} refcount={stored.GetValueOrDefault(cluster)}");
                    _corruptions++;
                }
            }
            if (fixedLeaks > 0)
                file.Flush();
            ulong total = Clusters(header.Size);
            ulong allocated = (ulong)_dataClusters;
            return new CheckResult(_corruptions, leaks, fixedLeaks, _findings, allocated, total, file.Length);
        }

        private int _dataClusters;

        private void WalkL1()
        {
            var l1 = new byte[header.L1Bytes];
            file.ReadExact(header.L1TableOffset, l1, "L1 table");
            for (uint i = 0; i < header.L1Size; i++)
            {
                ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l1.AsSpan((int)i * 8));
                ulong l2 = entry & L2Entry.OffsetMask;
                if (l2 == 0)
                    continue;
                if (!ValidOffset(l2, $"L2 table (L1 index {i})"))
                    continue;
                AddMetadata(l2 >> Bits, 1, "L2 table");
                _copiedFlags.Add((l2 >> Bits, (entry & L2Entry.CopiedFlag) != 0, $"L2 table at L1 index {i}"));
                var table = new byte[ClusterSize];
                file.ReadAvailable(l2, table);
                for (ulong j = 0; j < header.L2Entries; j++)
                    CheckL2Entry(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan((int)j * 8)), i, j);
            }
        }

        private void CheckL2Entry(ulong raw, uint l1Index, ulong l2Index)
        {
            L2Entry entry;
            try
            {
                entry = L2Entry.Decode(raw, Bits, header.Version, file.Path);
            }
            catch (ImageFormatException e)
            {
                _findings.Add($"ERROR {e.Message} (L1 index {l1Index}, L2 index {l2Index})");
                _corruptions++;
                return;
            }
            string where = $"data cluster (L1 index {l1Index}, L2 index {l2Index})";
            switch (entry.Kind)
            {
                case ClusterKind.Normal or ClusterKind.Zero when entry.HostOffset != 0:
                    if (!ValidOffset(entry.HostOffset, where))
                        return;
                    AddReference(entry.HostOffset >> Bits, where, metadata: false);
                    _copiedFlags.Add((entry.HostOffset >> Bits, entry.Copied, where));
                    _dataClusters++;
                    break;
                case ClusterKind.Compressed:
                    if (entry.HostOffset >= file.Length)
                    {
                        _findings.Add($"ERROR compressed {where} at {entry.HostOffset} is past the end of the file");
                        _corruptions++;
                        return;
                    }
                    foreach (ulong c in entry.CompressedClusters(Bits))
                        AddReference(c, "compressed " + where, metadata: false);
                    _dataClusters++;
                    break;
            }
        }

        private bool ValidOffset(ulong offset, string what)
        {
            if (offset % ClusterSize != 0)
                _findings.Add($"ERROR {what} offset {offset} is not cluster-aligned");
            else if (offset >= file.Length)
                _findings.Add($"ERROR {what} offset {offset} is past the end of the file ({file.Length} bytes)");
            else
                return true;
            _corruptions++;
            return false;
        }

        private void AddMetadata(ulong first, ulong count, string what)
        {
            for (ulong c = first; c < first + count; c++)
                AddReference(c, what, metadata: true);
        }

        private void AddReference(ulong cluster, string what, bool metadata)
        {
            if (metadata && cluster == 0 && what == "header" && _references.ContainsKey(0))
                return; // the backing file name inside the header cluster
            if ((cluster << Bits) >= file.Length)
            {
                _findings.Add($"ERROR {what} cluster {cluster} is past the end of the file");
                _corruptions++;
                return;
            }
            if (_metadata.TryGetValue(cluster, out var owner))
            {
                _findings.Add($"ERROR cluster {cluster} is used as both {owner} and {what}");
                _corruptions++;
            }
            else if (metadata && _references.ContainsKey(cluster))
            {
                _findings.Add($"ERROR cluster {cluster} is used as both data and {what}");
                _corruptions++;
            }
            if (metadata)
                _metadata.TryAdd(cluster, what);
            _references[cluster] = _references.GetValueOrDefault(cluster) + 1;
        }

        private ulong Clusters(ulong bytes) => (bytes + ClusterSize - 1) >> Bits;
    }
}
