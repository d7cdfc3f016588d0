/**
 * The `get-repo-info` flow from the Prefect write-up: fetch a GitHub
 * repository and log its stars and forks.
 *
 *   npx tenaz run examples/get-repo-info.ts --param repo=PrefectHQ/prefect
 *
 * `apiBase` lets the tests (or GitHub Enterprise) point it at another server.
 */
import { flow, getRunContext, getRunLogger, task } from 'tenaz';

/** The part of GitHub's repository payload this flow reads. */
interface RepoInfo {
  stargazers_count: number;
  forks_count: number;
}

/** GETs a repository from the GitHub REST API; retried, since the network is the likeliest thing to fail. */
export const getRepo = task(
  { name: 'get-repo', retries: 2, retryDelayMs: 500, timeoutMs: 10_000 },
  async (apiBase: string, repo: string): Promise<RepoInfo> => {
    const url = `${apiBase}/repos/${repo}`;
    const res = await fetch(url, {
      headers: { accept: 'application/vnd.github+json', 'user-agent': 'tenaz-example' },
      signal: getRunContext().signal,
    });
    if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${res.statusText}`);
    return (await res.json()) as RepoInfo;
  },
);

/** Logs and returns a repository's stars and forks. */
export const getRepoInfo = flow(
  { name: 'get-repo-info' },
  async (repo: string = 'PrefectHQ/prefect', apiBase: string = 'https://api.github.com') => {
    const info = await getRepo(apiBase, repo);
    const logger = getRunLogger();
    logger.info(`${repo} repository statistics 🤓:`);
    logger.info(`Stars 🌠 : ${info.stargazers_count}`);
    logger.info(`Forks 🍴 : ${info.forks_count}`);
    return { stars: info.stargazers_count, forks: info.forks_count };
  },
);
