package cache

// CopySession is copySession, for the tests and benchmarks.
var CopySession = copySession
