import Testing

@testable import RingportCore

/// SplitMix64 is what the replayable tools' seeds mean: its sequence must never change.
@Suite struct SplitMix64Tests {
    @Test func theSequenceIsTheReferenceOne() {
        var random = SplitMix64(state: 0)
        #expect(
            [random.next(), random.next(), random.next()] == [
                0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F,
            ])
        var state: UInt64 = 0
        #expect(SplitMix64.next(&state) == 0xE220_A839_7B1D_CDAF && state == 0x9E37_79B9_7F4A_7C15)
        var bounded = SplitMix64(state: 42)
        #expect(bounded.next(below: 10) == 3)
        #expect(bounded.next(below: 0) == 0)  // a bound below 1 counts as 1
    }
}
