/**
 * Option parsers shared by the CLI and the dev tools: each names the option in its error
 * (commander prints it and exits with code 1).
 */
import { InvalidArgumentError } from 'commander';

export function num(name: string) {
  return (v: string) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return x;
  };
}
export function int(name: string) {
  return (v: string) => {
    const x = num(name)(v);
    if (!Number.isInteger(x)) throw new InvalidArgumentError(`${name} must be a whole number, got "${v}"`);
    return x;
  };
}
export function list(name: string) {
  return (v: string) => v.split(',').map(num(name));
}
export function pair(name: string) {
  return (v: string): [number, number] => {
    const parts = v.split(',').map(num(name));
    if (parts.length !== 2) throw new InvalidArgumentError(`${name} takes two numbers "low,high", got "${v}"`);
    return [parts[0]!, parts[1]!];
  };
}
export function positiveInt(name: string) {
  return (v: string) => {
    const x = int(name)(v);
    if (x < 1) throw new InvalidArgumentError(`${name} must be at least 1, got "${v}"`);
    return x;
  };
}
