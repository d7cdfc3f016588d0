/** Run names: adjective-animal pairs, as Prefect users know them ('light-potoo'). */
import { adjectives, animals, uniqueNamesGenerator } from 'unique-names-generator';

export function generateRunName(): string {
  return uniqueNamesGenerator({ dictionaries: [adjectives, animals], separator: '-', length: 2, style: 'lowerCase' });
}
