// spawn-guard ANCESTOR-PID PROGRAM [ARGUMENT...]: how Tests/Support starts every process. Arms
// PR_SET_PDEATHSIG (SIGKILL) in this process, which the exec keeps, checks that ANCESTOR-PID (the test
// process) is still an ancestor, and execs PROGRAM. So a test run that dies, even by SIGKILL, takes its
// processes with it.
import Glibc
import RingportSystem

func fail(_ message: String, _ code: Int32) -> Never {
    var line = "spawn-guard: " + message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(code)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let ancestor = pid_t(arguments[1]) else {
    fail("usage: spawn-guard ANCESTOR-PID PROGRAM [ARGUMENT...]", 64)
}
do { try ProcessControl.dieWithAncestor(ancestor) } catch { fail("\(error)", 70) }
fail("\(ProcessControl.exec(commandLineFrom: 2))", 127)
