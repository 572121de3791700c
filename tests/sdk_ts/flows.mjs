// Flows a Daytona user writes with the official TypeScript SDK, run unmodified against
// the embedded engine. Usage: node flows.mjs <flow>; DAYTONA_API_URL and DAYTONA_API_KEY
// point at the engine. A flow throws (exit 1) on the first answer that differs from
// Daytona's; on success it prints one JSON line of what it saw.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import http from 'node:http'
import { Daytona } from '@daytonaio/sdk'

const daytona = new Daytona({
  apiUrl: process.env.DAYTONA_API_URL,
  apiKey: process.env.DAYTONA_API_KEY,
})

// GET over loopback naming another host: Node does not resolve *.localhost as browsers do.
function get(port, path, headers) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, headers }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (body += chunk))
      response.on('end', () => resolve({ status: response.statusCode, body }))
    })
    request.on('error', reject)
  })
}

async function withSandbox(body) {
  const sandbox = await daytona.create({ labels: { flow: 'typescript-sdk' } })
  try {
    return await body(sandbox)
  } finally {
    await sandbox.delete()
  }
}

const flows = {
  // Create, exec, labels, stop and start, list: the SDK's first page of docs.
  async lifecycle() {
    return withSandbox(async (sandbox) => {
      assert.equal(sandbox.state, 'started')
      const echo = await sandbox.process.executeCommand('echo "$((6 * 7))"')
      assert.equal(echo.exitCode, 0)
      assert.equal(echo.result.trim(), '42')
      const failed = await sandbox.process.executeCommand('exit 3')
      assert.equal(failed.exitCode, 3)
      await sandbox.setLabels({ flow: 'typescript-sdk', step: 'labelled' })
      const found = await daytona.get(sandbox.id)
      assert.equal(found.labels.step, 'labelled')
      await sandbox.stop()
      assert.equal(sandbox.state, 'stopped')
      await sandbox.start()
      assert.equal(sandbox.state, 'started')
      const listed = []
      for await (const found of daytona.list({ labels: { step: 'labelled' } })) {
        listed.push(found.id)
      }
      assert.deepEqual(listed, [sandbox.id])
      return { id: sandbox.id, listed: listed.length }
    })
  },

  // Upload, list, download, find and replace, and a session command's logs.
  async files() {
    return withSandbox(async (sandbox) => {
      const text = 'first line\nsecond line\n'
      await sandbox.fs.createFolder('work', '755')
      await sandbox.fs.uploadFile(Buffer.from(text), 'work/notes.txt')
      const names = (await sandbox.fs.listFiles('work')).map((f) => f.name)
      assert.deepEqual(names, ['notes.txt'])
      assert.equal((await sandbox.fs.downloadFile('work/notes.txt')).toString(), text)
      const matches = await sandbox.fs.findFiles('work', 'second')
      assert.equal(matches.length, 1)
      assert.equal(matches[0].line, 2)
      const replaced = await sandbox.fs.replaceInFiles(['work/notes.txt'], 'second', '2nd')
      assert.equal(replaced[0].success, true)
      assert.match((await sandbox.fs.downloadFile('work/notes.txt')).toString(), /2nd line/)

      await sandbox.process.createSession('flow')
      const run = await sandbox.process.executeSessionCommand('flow', {
        command: 'cd work && pwd && cat notes.txt >&2',
      })
      assert.equal(run.exitCode, 0)
      const logs = await sandbox.process.getSessionCommandLogs('flow', run.cmdId)
      assert.match(logs.stdout ?? logs.output, /\/work\n/)
      assert.match(logs.stderr, /2nd line/)
      await sandbox.process.deleteSession('flow')
      return { files: names, replaced: replaced.length }
    })
  },

  // State that lasts within a context, separate contexts, errors as objects, streaming.
  async interpreter() {
    return withSandbox(async (sandbox) => {
      const ci = sandbox.codeInterpreter
      await ci.runCode('import math\nx = 41')
      const first = await ci.runCode('print(x + 1, math.floor(2.5))')
      assert.equal(first.stdout, '42 2\n')

      const ctx = await ci.createContext('/tmp')
      const isolated = await ci.runCode('print("x" in globals())\nimport os; print(os.getcwd())', {
        context: ctx,
      })
      assert.equal(isolated.stdout, 'False\n/tmp\n')
      const listed = await ci.listContexts()
      assert.deepEqual(listed.map((c) => c.id), [ctx.id])

      const streamed = []
      const started = Date.now()
      await ci.runCode('import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)', {
        onStdout: (msg) => streamed.push([msg.output, Date.now() - started]),
      })
      assert.equal(streamed.map(([text]) => text).join(''), '0\n1\n2\n')
      // The first line arrives before the run ends, not with the rest at the end.
      assert.ok(streamed[0][1] < streamed.at(-1)[1] - 300, JSON.stringify(streamed))

      const failed = await ci.runCode('1 / 0')
      assert.equal(failed.error.name, 'ZeroDivisionError')
      assert.match(failed.error.traceback, /ZeroDivisionError/)
      await ci.deleteContext(ctx)
      assert.deepEqual(await ci.listContexts(), [])
      return { streamed: streamed.length, error: failed.error.name }
    })
  },

  // Clone a repository that lives on the sandbox's own disk, then status, branch, commit.
  async git() {
    return withSandbox(async (sandbox) => {
      const setup = await sandbox.process.executeCommand(
        'git init -q -b main /tmp/origin && cd /tmp/origin && echo hello > README.md && ' +
          'git add README.md && git -c user.name=t -c user.email=t@example.invalid commit -qm first',
      )
      assert.equal(setup.exitCode, 0, setup.result)
      await sandbox.git.clone('file:///tmp/origin', 'repo')
      assert.equal((await sandbox.git.status('repo')).currentBranch, 'main')
      await sandbox.git.createBranch('repo', 'feature')
      await sandbox.git.checkoutBranch('repo', 'feature')
      await sandbox.fs.uploadFile(Buffer.from('new\n'), 'repo/new.txt')
      const dirty = await sandbox.git.status('repo')
      assert.deepEqual(dirty.fileStatus.map((f) => f.name), ['new.txt'])
      await sandbox.git.add('repo', ['new.txt'])
      const commit = await sandbox.git.commit('repo', 'add new', 'Flow', 'flow@example.invalid')
      assert.match(commit.sha, /^[0-9a-f]{40}$/)
      const branches = (await sandbox.git.branches('repo')).branches.sort()
      assert.deepEqual(branches, ['feature', 'main'])
      const log = await sandbox.process.executeCommand('git -C repo log -1 --format=%an:%s')
      assert.equal(log.result.trim(), 'Flow:add new')
      return { sha: commit.sha, branches }
    })
  },

  // A fork is a started copy; what either side writes afterwards stays its own.
  async fork() {
    return withSandbox(async (parent) => {
      await parent.fs.uploadFile(Buffer.from('before\n'), 'shared.txt')
      const fork = await parent.fork({ name: `fork-${parent.id.slice(0, 8)}` })
      try {
        assert.equal(fork.state, 'started')
        assert.notEqual(fork.id, parent.id)
        assert.equal((await fork.fs.downloadFile('shared.txt')).toString(), 'before\n')
        await fork.fs.uploadFile(Buffer.from('fork\n'), 'shared.txt')
        await parent.fs.uploadFile(Buffer.from('parent\n'), 'only-parent.txt')
        assert.equal((await parent.fs.downloadFile('shared.txt')).toString(), 'before\n')
        const inFork = await fork.process.executeCommand('test -e only-parent.txt; echo $?')
        assert.equal(inFork.result.trim(), '1')
        return { fork: fork.id, parent: parent.id }
      } finally {
        await fork.delete()
      }
    })
  },

  // A server inside the sandbox, reached through its preview URL with the preview token.
  async preview() {
    return withSandbox(async (sandbox) => {
      await sandbox.fs.uploadFile(Buffer.from('served\n'), 'site/index.html')
      await sandbox.process.createSession('web')
      await sandbox.process.executeSessionCommand('web', {
        command: 'cd site && python3 -m http.server 8080 --bind 127.0.0.1',
        runAsync: true,
      })
      const link = await sandbox.getPreviewLink(8080)
      const url = new URL(link.url)
      assert.match(url.hostname, new RegExp(`^8080-${sandbox.id}\\.localhost$`))
      const withToken = { Host: url.host, 'x-daytona-preview-token': link.token }
      let answer = { status: 0, body: '' }
      for (let tries = 0; tries < 50 && answer.body !== 'served\n'; tries++) {
        answer = await get(url.port, '/index.html', withToken)
        if (answer.body !== 'served\n') await new Promise((done) => setTimeout(done, 100))
      }
      assert.equal(answer.status, 200)
      assert.equal(answer.body, 'served\n')
      const refused = await get(url.port, '/index.html', { Host: url.host })
      assert.equal(refused.status, 401)
      return { status: 200, refused: refused.status }
    })
  },

  // SSH access from the SDK, used with the real OpenSSH client, then revoked.
  async ssh() {
    return withSandbox(async (sandbox) => {
      const access = await sandbox.createSshAccess(5)
      assert.equal(access.sandboxId, sandbox.id)
      const [, , port, login] = access.sshCommand.split(' ')
      const ssh = (command) =>
        execFileSync('ssh', [
          '-p', port, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
          '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', login, command,
        ], { encoding: 'utf8', timeout: 60_000 })
      assert.equal(ssh('echo "$USER:$((6 * 7))"'), 'daytona:42\n')
      assert.equal((await sandbox.validateSshAccess(access.token)).valid, true)
      await sandbox.revokeSshAccess(access.token)
      assert.throws(() => ssh('true'), /status 255|Permission denied/)
      return { login: login.split('@')[1], revoked: true }
    })
  },
}

const name = process.argv[2]
if (!(name in flows)) {
  console.error(`unknown flow ${JSON.stringify(name)}; flows: ${Object.keys(flows).join(', ')}`)
  process.exit(2)
}
console.log(JSON.stringify({ flow: name, ...(await flows[name]()) }))
